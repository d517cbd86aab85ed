package push

import (
	"regexp"
	"strings"
	"sync"
)

// Glob matching (appendix "Glob-style matching"): '*' is any run of characters, '?' exactly
// one; the match is case-insensitive. A pattern matches either the whole value, or, for
// content.body and content rules, any substring that starts and ends at a word boundary: the
// start or end of the value, or a character outside [A-Za-z0-9_].

// maxCachedMatchers bounds the compiled pattern cache: patterns include user ids and
// display names, so their number grows with the users of the server.
const maxCachedMatchers = 4096

type matcherKey struct {
	pattern string
	words   bool
}

var (
	matchersMu sync.RWMutex
	matchers   = map[matcherKey]*regexp.Regexp{}
)

// globMatch reports whether value matches pattern: the whole value, or with words, a run of
// whole words in it.
func globMatch(pattern, value string, words bool) bool {
	if !words && !strings.ContainsAny(pattern, "*?") {
		return strings.EqualFold(pattern, value) // the common case: a type or an id
	}
	re := compiledGlob(pattern, words)
	return re != nil && re.MatchString(value)
}

// compiledGlob returns the regular expression of a pattern from the cache, compiling it the
// first time.
func compiledGlob(pattern string, words bool) *regexp.Regexp {
	k := matcherKey{pattern, words}
	matchersMu.RLock()
	re, ok := matchers[k]
	matchersMu.RUnlock()
	if ok {
		return re
	}
	re, err := regexp.Compile(globRegexp(pattern, words))
	if err != nil {
		re = nil // cannot happen with quoted input; a nil entry never matches
	}
	matchersMu.Lock()
	if len(matchers) >= maxCachedMatchers {
		clear(matchers)
	}
	matchers[k] = re
	matchersMu.Unlock()
	return re
}

// globRegexp translates a glob into a regular expression. Word boundaries are the spec's: an
// ASCII non-word character, or the start or end of the value, and Go's \W is exactly the
// complement of [0-9A-Za-z_]. \b also lets a pattern that starts or ends with a non-word
// character (such as "@room") begin or end right after or before a word.
func globRegexp(pattern string, words bool) string {
	var b strings.Builder
	b.WriteString(`(?is)`)
	if words {
		b.WriteString(`(?:^|\W|\b)`)
	} else {
		b.WriteString(`^`)
	}
	start := 0
	for i := 0; i < len(pattern); i++ {
		switch pattern[i] {
		case '*', '?':
			b.WriteString(regexp.QuoteMeta(pattern[start:i]))
			if pattern[i] == '*' {
				b.WriteString(`.*?`)
			} else {
				b.WriteString(`.`)
			}
			start = i + 1
		}
	}
	b.WriteString(regexp.QuoteMeta(pattern[start:]))
	if words {
		b.WriteString(`(?:\W|\b|$)`)
	} else {
		b.WriteString(`$`)
	}
	return b.String()
}
