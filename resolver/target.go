package resolver

import (
	"time"

	"github.com/opencontainers/go-digest"
)

// DefaultRoles is docker's rule for which roles may sign a tag: a tag in targets/releases wins
// over one in targets, and any other delegation is ignored.
var DefaultRoles = []string{"targets/releases", "targets"}

// Target is the verified answer to "which digest is <GUN>:<tag> signed to, and by whom".
type Target struct {
	GUN    string
	Tag    string
	Digest digest.Digest // sha256 of the manifest (or index) bytes
	Size   int64         // length of the manifest (or index) bytes
	Role   string        // the role whose metadata listed the tag
	// Signers are the key IDs whose valid signatures satisfied that role's threshold.
	Signers []string
	// Expires is the earliest expiry of the metadata the answer rests on (timestamp, snapshot,
	// the signing role and its parents, root). Past it, the answer must not be served.
	Expires time.Time
}
