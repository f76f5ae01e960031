package resolver

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"sort"
)

// Notary refuses RSA keys below 2048 bits for every RSA method (tuf/signed/verifiers.go).
const minRSABits = 2048

// keySet is a role's keys and threshold as the parent (root or delegating targets) lists them.
type keySet struct {
	name      string
	keys      map[string]tufKey
	threshold int
}

// fingerprint identifies everything about ks that verification depends on (its name only
// appears in errors): the threshold and each key ID with the key it names.
func (ks keySet) fingerprint() [32]byte {
	h := sha256.New()
	var n [8]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	binary.BigEndian.PutUint64(n[:], uint64(ks.threshold))
	h.Write(n[:])
	for _, id := range slices.Sorted(maps.Keys(ks.keys)) {
		k := ks.keys[id]
		field([]byte(id))
		field([]byte(k.Type))
		field(k.Value.Public)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// errNoSignatures is not a threshold failure in Notary (ErrNoSignatures is its own type), so
// a delegation without signatures is fatal rather than skipped; it still reads as a
// threshold problem to callers.
var errNoSignatures = errors.New("no signatures")

// verifySignatures checks env against ks and returns the sorted IDs of keys with a valid
// signature. Thresholds count distinct key IDs; a signature whose keyid names a key whose
// computed ID differs is a hard error, exactly as in Notary (ErrInvalidKeyID).
func verifySignatures(env *envelope, ks keySet) ([]string, error) {
	if len(env.Signatures) == 0 {
		return nil, fmt.Errorf("%w: %s: %w", ErrThreshold, ks.name, errNoSignatures)
	}
	if ks.threshold < 1 {
		return nil, fmt.Errorf("%w: %s: threshold %d", ErrThreshold, ks.name, ks.threshold)
	}
	msg, err := canonicalMessage(env, ks)
	if err != nil {
		return nil, err
	}
	valid := map[string]struct{}{}
	for _, sig := range env.Signatures {
		k, ok := ks.keys[sig.KeyID]
		if !ok {
			continue
		}
		if k.id() != sig.KeyID {
			return nil, fmt.Errorf("%w: %s: signature key ID %s does not match its key", ErrInvalid, ks.name, sig.KeyID)
		}
		if verifyMessage(k, sig.Method, sig.Sig, msg) != nil {
			continue
		}
		valid[sig.KeyID] = struct{}{}
	}
	if len(valid) < ks.threshold {
		return nil, fmt.Errorf("%w: %s: %d valid signatures, threshold %d", ErrThreshold, ks.name, len(valid), ks.threshold)
	}
	ids := make([]string, 0, len(valid))
	for id := range valid {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids, nil
}

// message is what signatures over a signed section are checked against: its canonical form
// (only when an Ed25519 signature needs it whole: the largest files are held once, not twice)
// and that form's sha256 (what ECDSA and RSA sign).
type message struct {
	full   []byte // nil unless an eddsa signature is to be checked
	digest [32]byte
}

// canonicalMessage canonicalises env's signed section, as notary does before it looks at any
// signature (a section that does not canonicalise fails whatever the signatures).
func canonicalMessage(env *envelope, ks keySet) (message, error) {
	for _, sig := range env.Signatures {
		if _, ok := ks.keys[sig.KeyID]; ok && sig.Method == "eddsa" {
			full, err := canonicalSigned(env.Signed)
			if err != nil {
				return message{}, err
			}
			return message{full: full, digest: sha256.Sum256(full)}, nil
		}
	}
	d, err := canonicalDigest(env.Signed)
	return message{digest: d}, err
}

// verifyMessage dispatches on the signature's method, then checks the key type fits it,
// like Notary's Verifiers map. The legacy "pycrypto-pkcs#1 pss" method is not supported.
func verifyMessage(k tufKey, method string, sig []byte, msg message) error {
	switch method {
	case "eddsa":
		if k.Type != keyED25519 {
			return errors.New("eddsa needs an ed25519 key")
		}
		if len(sig) != ed25519.SignatureSize || len(k.Value.Public) != ed25519.PublicKeySize {
			return errors.New("bad ed25519 signature or key length")
		}
		if msg.full == nil {
			return errors.New("eddsa signature over a message not held whole")
		}
		if !ed25519.Verify(ed25519.PublicKey(k.Value.Public), msg.full, sig) {
			return errors.New("invalid ed25519 signature")
		}
		return nil
	case "ecdsa":
		if k.Type != keyECDSA && k.Type != keyECDSAx509 {
			return errors.New("ecdsa needs an ecdsa key")
		}
		pub, err := cryptoKey(k)
		if err != nil {
			return err
		}
		return verifyECDSA(pub, sig, msg.digest[:])
	case "rsapss", "rsapkcs1v15":
		if k.Type != keyRSA && k.Type != keyRSAx509 {
			return errors.New("rsa method needs an rsa key")
		}
		pub, err := cryptoKey(k)
		if err != nil {
			return err
		}
		return verifyRSA(pub, method, sig, msg.digest[:])
	default:
		return fmt.Errorf("unsupported signature method %q", method)
	}
}

// verifyECDSA expects Notary's raw r‖s encoding of exactly twice the curve size; ASN.1 DER
// signatures are refused because Notary refuses them.
// digest is the message's sha256.
func verifyECDSA(pub crypto.PublicKey, sig, digest []byte) error {
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return errors.New("not an ecdsa key")
	}
	size := (k.Params().BitSize + 7) >> 3
	if len(sig) != 2*size {
		return errors.New("ecdsa signature has the wrong length")
	}
	r := new(big.Int).SetBytes(sig[:size])
	s := new(big.Int).SetBytes(sig[size:])
	if !ecdsa.Verify(k, digest, r, s) {
		return errors.New("invalid ecdsa signature")
	}
	return nil
}

// verifyRSA checks an RSA signature over the message whose sha256 is digest.
func verifyRSA(pub crypto.PublicKey, method string, sig, digest []byte) error {
	k, ok := pub.(*rsa.PublicKey)
	if !ok {
		return errors.New("not an rsa key")
	}
	if k.N.BitLen() < minRSABits || len(sig) < minRSABits/8 {
		return errors.New("rsa key or signature shorter than 2048 bits")
	}
	if method == "rsapss" {
		return rsa.VerifyPSS(k, crypto.SHA256, digest, sig, &rsa.PSSOptions{SaltLength: sha256.Size, Hash: crypto.SHA256})
	}
	return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, sig)
}
