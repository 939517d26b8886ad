package store

import (
	"crypto/rand"
	"encoding/hex"
	"math/big"
)

// NewJID returns a new random job ID, short and readable: an adjective, an
// animal and four hex digits, e.g. "brave-otter-3f2a". There are about a
// billion of them, so a caller should still retry on errdefs.ErrAlreadyExists.
func NewJID() string {
	return pick(adjectives) + "-" + pick(animals) + "-" + randHex(2)
}

// NewCheckpointID returns a new random checkpoint ID: "ck-" and ten hex
// digits, e.g. "ck-9c1e04b7a2".
func NewCheckpointID() string {
	return "ck-" + randHex(5)
}

// pick returns a uniformly random element of words.
func pick(words []string) string {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(len(words))))
	if err != nil {
		panic("store: crypto/rand: " + err.Error()) // never fails since Go 1.24
	}
	return words[n.Int64()]
}

// randHex returns n random bytes in hex.
func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails since Go 1.24; crashes the program instead
	return hex.EncodeToString(b)
}
