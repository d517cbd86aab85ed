package account

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"

	"golang.org/x/crypto/argon2"

	"myelin/keys"
)

// argon2id parameters for new hashes (OWASP's recommended minimum: 19 MiB, 2 passes, 1 lane).
// They are written into each hash, so raising them later leaves old hashes verifiable.
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonKeyLen    = 32
	argonSaltLen   = 16
)

var errBadHash = errors.New("account: malformed password hash")

// hashSlots bounds how many argon2id computations run at once: half the CPUs, at least one.
// Each takes argonMemoryKiB (19 MiB) of heap, which the Go runtime keeps for a while after
// the hash is done (the garbage collector lets the heap grow to twice what is live), so a
// burst of registrations or logins used to take the server's resident memory from 30 MB to
// 120-470 MB (BENCHMARKS.md). Hashes beyond the bound wait their turn; with one core of two
// hashing, the other keeps serving everything else, which also blunts a flood of password
// guesses.
var hashSlots = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2))

// idKey is argon2.IDKey within a hash slot. The last hash of a burst hands its memory back to
// the operating system: left to the runtime, the 19 MiB of each hash stayed resident after
// it, and the benchmarks that register users while they measure (join, e2ee-keys) peaked at
// 105-107 MB where the others stay under 100 (issue 9). A forced collection costs a few
// milliseconds on a heap of a few tens of MB, next to the tens of milliseconds of the hash.
func idKey(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
	hashing.Add(1)
	hashSlots <- struct{}{}
	key := argon2.IDKey(password, salt, time, memory, threads, keyLen)
	<-hashSlots
	if hashing.Add(-1) == 0 {
		debug.FreeOSMemory()
	}
	return key
}

// hashing counts the hashes waiting for a slot or running: idKey frees memory when it ends a
// burst.
var hashing atomic.Int64

// HashPassword returns the PHC-format argon2id hash of password.
func HashPassword(password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	sum := idKey([]byte(password), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemoryKiB, argonTime,
		argonThreads, keys.EncodeBase64(salt), keys.EncodeBase64(sum)), nil
}

// CheckPassword reports whether password matches a hash made by HashPassword, in constant time.
func CheckPassword(hash, password string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errBadHash
	}
	var version int
	var memory, iterations uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, errBadHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &memory, &iterations, &threads); err != nil {
		return false, errBadHash
	}
	salt, err := keys.DecodeBase64(parts[4])
	if err != nil {
		return false, errBadHash
	}
	want, err := keys.DecodeBase64(parts[5])
	if err != nil || len(want) == 0 {
		return false, errBadHash
	}
	got := idKey([]byte(password), salt, iterations, memory, threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}
