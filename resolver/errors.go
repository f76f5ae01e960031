package resolver

import "errors"

// The proxy turns a resolution error into an HTTP status by asking errors.Is against these
// sentinels. Two of them mean "this content is not signed" and become a 404; every other
// failure means "we could not establish trust right now" and becomes a 503, so an outage or
// an attack is never mistaken for a missing tag (and never served unverified).
var (
	// ErrTagNotSigned: the repository has valid trust data, but no accepted role signs the tag.
	ErrTagNotSigned = errors.New("tag is not signed")
	// ErrNoTrustData: the trust server has no trust data for the repository (root.json is 404).
	ErrNoTrustData = errors.New("repository has no trust data")

	// ErrUnavailable: the trust server could not be reached or answered with an unexpected
	// status, and no still-valid cached trust data could stand in.
	ErrUnavailable = errors.New("trust server unavailable")
	// ErrRejected: the trust server answered 400 Bad Request, which notary's HTTP store reads
	// as a refused operation (ErrInvalidOperation), not an outage: no cached timestamp stands
	// in for it.
	ErrRejected = errors.New("trust server rejected the request")
	// ErrExpired: a role's metadata, or a root certificate, is past its expiry.
	ErrExpired = errors.New("trust data expired")
	// ErrRollback: a role's version is lower than a version verified before.
	ErrRollback = errors.New("trust data rolled back to an older version")
	// ErrPinMismatch: the root does not match the configured trust pin, or TOFU is disabled
	// and no pin applies.
	ErrPinMismatch = errors.New("root does not match trust pinning")
	// ErrThreshold: fewer distinct valid signatures than the role's threshold.
	ErrThreshold = errors.New("insufficient valid signatures")
	// ErrChecksum: a metadata file does not match the length or hash its parent lists.
	ErrChecksum = errors.New("metadata checksum mismatch")
	// ErrInvalid: malformed metadata, keys, certificates or signatures that fit no other kind.
	ErrInvalid = errors.New("invalid trust data")
)

// IsNotSigned reports whether err means the content is unsigned (as opposed to trust being
// unavailable or invalid). Only this case may become a 404.
func IsNotSigned(err error) bool {
	return errors.Is(err, ErrTagNotSigned) || errors.Is(err, ErrNoTrustData)
}
