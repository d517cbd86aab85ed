package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"myelin/clientapi"
	"myelin/config"
	"myelin/storage"
)

// consentPolicies hands consent.policies to the client API, which asks new users to accept them.
func consentPolicies(c config.Consent) []clientapi.ConsentPolicy {
	var out []clientapi.ConsentPolicy
	for _, p := range c.Policies {
		docs := make(map[string]clientapi.PolicyDocument, len(p.Languages))
		for lang, d := range p.Languages {
			docs[lang] = clientapi.PolicyDocument{Name: d.Name, URL: d.URL}
		}
		out = append(out, clientapi.ConsentPolicy{ID: p.ID, Version: p.Version, Documents: docs})
	}
	return out
}

// runConsent lists every account with the policy versions it accepted, so that after publishing
// a new version the operator sees who has not accepted it. Existing users are not locked out
// (the spec defines no way to ask them again), and the server never counts them as accepting
// what they were not shown.
func runConsent(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("consent", stderr)
	path := fs.String("config", "myelin.yaml", "the configuration file")
	policy := fs.String("policy", "", "only this policy id (one of consent.policies, or one no longer configured)")
	asJSON := fs.Bool("json", false, "one JSON object per account and line instead of a table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return withDatabase(ctx, *path, func(cfg *config.Config, db *storage.DB) error {
		current := map[string]string{} // policy id to its current version
		for _, p := range cfg.Consent.Policies {
			if *policy == "" || p.ID == *policy {
				current[p.ID] = p.Version
			}
		}
		accounts, err := storage.ConsentByAccount(ctx, db, *policy)
		if err != nil {
			return err
		}
		report := consentReport{serverName: cfg.ServerName, current: current, accounts: accounts}
		if *asJSON {
			return report.writeJSON(stdout)
		}
		return report.writeTable(stdout)
	})
}

type consentReport struct {
	serverName string
	current    map[string]string
	accounts   []storage.AccountConsent
}

func (r consentReport) userID(a storage.AccountConsent) string {
	return "@" + a.Localpart + ":" + r.serverName
}

// missing returns the configured policies whose current version a has not accepted, sorted.
func (r consentReport) missing(a storage.AccountConsent) []string {
	out := []string{}
	for id, version := range r.current {
		if !slices.ContainsFunc(a.Accepted, func(c storage.Consent) bool { return c.PolicyID == id && c.Version == version }) {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// consentJSON is one account as `myelin consent --json` prints it.
type consentJSON struct {
	UserID      string               `json:"user_id"`
	Deactivated bool                 `json:"deactivated"`
	Accepted    []acceptedPolicyJSON `json:"accepted"`
	// Missing lists the configured policies whose current version the user has not accepted.
	Missing []string `json:"missing"`
}

type acceptedPolicyJSON struct {
	Policy     string `json:"policy"`
	Version    string `json:"version"`
	Accepted   string `json:"accepted"`
	AcceptedTS int64  `json:"accepted_ts"`
}

func (r consentReport) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	for _, a := range r.accounts {
		out := consentJSON{UserID: r.userID(a), Deactivated: a.DeactivatedTS != 0, Accepted: []acceptedPolicyJSON{}, Missing: r.missing(a)}
		for _, c := range a.Accepted {
			out.Accepted = append(out.Accepted, acceptedPolicyJSON{Policy: c.PolicyID, Version: c.Version,
				Accepted: consentTime(c.AcceptedTS), AcceptedTS: c.AcceptedTS})
		}
		if err := enc.Encode(out); err != nil {
			return err
		}
	}
	return nil
}

// writeTable prints a row per account and policy (configured, or accepted once and no longer
// configured), then, per configured policy, how many active accounts have not accepted its
// current version.
func (r consentReport) writeTable(w io.Writer) error {
	if len(r.accounts) == 0 {
		_, err := fmt.Fprintln(w, "no accounts")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tPOLICY\tCURRENT\tACCEPTED\tHAS CURRENT")
	notAccepted, active := map[string]int{}, 0
	for _, a := range r.accounts {
		user := r.userID(a)
		if a.DeactivatedTS != 0 {
			user += " (deactivated)"
		} else {
			active++
		}
		accepted := map[string][]string{}
		ids := make([]string, 0, len(r.current))
		for id := range r.current {
			ids = append(ids, id)
		}
		for _, c := range a.Accepted {
			if _, ok := r.current[c.PolicyID]; !ok && len(accepted[c.PolicyID]) == 0 {
				ids = append(ids, c.PolicyID)
			}
			accepted[c.PolicyID] = append(accepted[c.PolicyID], c.Version+" ("+consentTime(c.AcceptedTS)+")")
		}
		sort.Strings(ids)
		missing := r.missing(a)
		if len(ids) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\n", user)
		}
		for _, id := range ids {
			cur, has := r.current[id], "-"
			if cur == "" {
				cur = "(not configured)"
			} else if slices.Contains(missing, id) {
				has = "no"
				if a.DeactivatedTS == 0 {
					notAccepted[id]++
				}
			} else {
				has = "yes"
			}
			versions := strings.Join(accepted[id], ", ")
			if versions == "" {
				versions = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", user, id, cur, versions, has)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	ids := make([]string, 0, len(r.current))
	for id := range r.current {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fmt.Fprintf(w, "%s %s: %d of %d active accounts have not accepted it\n", id, r.current[id], notAccepted[id], active)
	}
	return nil
}

func consentTime(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339) }
