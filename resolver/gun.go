package resolver

import (
	"fmt"
	"strings"
)

// validateGUN refuses names that could not be a repository and could confuse URL or path
// handling: empty or dot segments, and anything outside the characters Docker references
// use (plus ':' for a registry port and upper case for hosts).
func validateGUN(gun string) error {
	if gun == "" || len(gun) > 1024 {
		return fmt.Errorf("%w: invalid GUN %q", ErrInvalid, gun)
	}
	for i := 0; i < len(gun); i++ {
		c := gun[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._-:/", c) >= 0) {
			return fmt.Errorf("%w: invalid character %q in GUN %q", ErrInvalid, c, gun)
		}
	}
	for _, seg := range strings.Split(gun, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: invalid path segment in GUN %q", ErrInvalid, gun)
		}
	}
	return nil
}
