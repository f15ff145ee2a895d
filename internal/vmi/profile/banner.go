package profile

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/bulwark-project/bulwark/internal/vmi/kimage"
)

const (
	bannerPrefix = "Linux version "
	maxBanner    = 512
)

// banner returns linux_banner ("Linux version 6.1.0-56-cloud-amd64
// (debian-kernel@...) ... #1 SMP ...") and the release in it. The symbol's
// address is used when known; otherwise the image is searched for the
// prefix followed by a digit, which skips printf formats like
// "Linux version %s".
func banner(vmlinux []byte, segs kimage.Segments, addr uint64, haveAddr bool) (string, string, error) {
	var s string
	if haveAddr {
		s, _ = segs.CString(vmlinux, addr, maxBanner)
	}
	if !strings.HasPrefix(s, bannerPrefix) {
		s = ""
		for from, tries := 0, 0; tries < 64; tries++ {
			i := bytes.Index(vmlinux[from:], []byte(bannerPrefix))
			if i < 0 {
				break
			}
			at := from + i
			from = at + 1
			rest := vmlinux[at+len(bannerPrefix):]
			if len(rest) == 0 || rest[0] < '0' || rest[0] > '9' {
				continue
			}
			end := bytes.IndexByte(rest[:min(len(rest), maxBanner)], 0)
			if end < 0 {
				continue
			}
			s = bannerPrefix + string(rest[:end])
			break
		}
	}
	if s == "" {
		return "", "", fmt.Errorf("profile: no linux_banner (\"Linux version ...\") in the image")
	}
	s = strings.TrimRight(s, "\n")
	for _, c := range []byte(s) {
		if c < ' ' || c > '~' {
			return "", "", fmt.Errorf("profile: linux_banner contains byte %#x", c)
		}
	}
	release, _, _ := strings.Cut(strings.TrimPrefix(s, bannerPrefix), " ")
	if release == "" {
		return "", "", fmt.Errorf("profile: linux_banner %q has no release", s)
	}
	return s, release, nil
}
