package event

import (
	"errors"
	"net/netip"
)

// ValidAction reports whether a is a well-formed action: dotted lower-case
// words, as in "user.login.failed". It does not check the length limit.
func ValidAction(a string) bool { return validAction(a) }

// CanonicalIP returns ip in the normal form events store it in, so that a
// search for an address matches however it was written.
func CanonicalIP(ip string) (string, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Zone() != "" {
		return "", errors.New("not an IP address")
	}
	return a.String(), nil
}
