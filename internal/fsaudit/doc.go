// Package fsaudit holds only a test: it fails when daemon-side code gains a
// file-system or socket call (os.OpenFile, os.Remove, net.Dial, unix.Mount,
// ...) that nobody has reviewed.
//
// The daemon runs as root and each VM's hypervisor as its own uid, so a
// call by path into a directory that uid can write can be redirected by a
// symlink it planted. Such calls must go through internal/safefs; every
// other risky call site is listed in testdata/reviewed.txt with a one-line
// reason why it is safe. The test reports call sites missing from the list
// (with the line to add) and entries whose call sites are gone.
//
//	go test ./internal/fsaudit                      check
//	go test ./internal/fsaudit -run TestReviewed -update
//	                                                rewrite the list: reasons kept,
//	                                                new call sites marked "TODO: review"
//
// The test fails while any "TODO" reason is left.
package fsaudit
