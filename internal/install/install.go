// Package install puts Bulwark's hardened systemd unit and its sysctl
// drop-in onto a host, for `bulwark install`. The unit is embedded in the
// binary (bulwark.service, every option commented); Files renders it for a
// binary path and Write puts the files in place atomically.
package install

import (
	_ "embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Paths inside the target root.
const (
	UnitPath   = "/etc/systemd/system/bulwark.service"
	SysctlPath = "/etc/sysctl.d/60-bulwark.conf"
)

// DefaultBinary is where the docs suggest installing the binary.
const DefaultBinary = "/usr/local/bin/bulwark"

// binaryMarker is replaced by the binary's path in the unit.
const binaryMarker = "@BINARY@"

//go:embed bulwark.service
var unitTemplate string

// sysctlConf raises the Unix datagram queue the virtual switch's ports use
// (the kernel default of 10 drops bursts; systemd as PID 1 sets 512 at boot
// too, this keeps it on hosts and containers where it does not).
const sysctlConf = `# Written by bulwark install. Bulwark's virtual switch moves one frame per
# Unix datagram; a short queue drops bursts (the daemon warns below 64).
net.unix.max_dgram_qlen = 512
`

// File is one file to install.
type File struct {
	Path string      `json:"path"` // absolute, prefix included
	Mode fs.FileMode `json:"-"`
	Data []byte      `json:"-"`
}

// Unit returns the unit with binary as the program ExecStart runs.
func Unit(binary string) (string, error) {
	if err := checkBinaryPath(binary); err != nil {
		return "", err
	}
	return strings.ReplaceAll(unitTemplate, binaryMarker, binary), nil
}

// Files returns what installing under prefix ("/" for this host) writes
// for a unit that runs binary (its path on the target system).
func Files(prefix, binary string) ([]File, error) {
	if !filepath.IsAbs(prefix) {
		return nil, fmt.Errorf("--prefix %q: must be an absolute path", prefix)
	}
	unit, err := Unit(binary)
	if err != nil {
		return nil, err
	}
	return []File{
		{Path: filepath.Join(prefix, UnitPath), Mode: 0o644, Data: []byte(unit)},
		{Path: filepath.Join(prefix, SysctlPath), Mode: 0o644, Data: []byte(sysctlConf)},
	}, nil
}

// CheckBinary checks that binary (a path on the target system) is an
// executable regular file under prefix.
func CheckBinary(prefix, binary string) error {
	fi, err := os.Stat(filepath.Join(prefix, binary))
	if err != nil {
		return fmt.Errorf("--binary %s: %w", binary, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("--binary %s: not an executable file", binary)
	}
	return nil
}

// hiddenByUnit are trees the unit's sandbox hides from the daemon
// (ProtectHome=yes, PrivateTmp=yes): a binary there cannot be started.
var hiddenByUnit = []string{"/home", "/root", "/run/user", "/tmp", "/var/tmp"}

// checkBinaryPath refuses paths the unit cannot use: relative ones, ones
// the sandbox hides, and characters that systemd would expand or split on
// (%, $, quotes, backslashes, white space).
func checkBinaryPath(binary string) error {
	if !filepath.IsAbs(binary) || filepath.Clean(binary) != binary {
		return fmt.Errorf("--binary %q: must be an absolute, clean path", binary)
	}
	for _, r := range binary {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+", r)
		if !ok {
			return fmt.Errorf("--binary %q: only letters, digits and / . _ - + are accepted in the unit's ExecStart", binary)
		}
	}
	for _, h := range hiddenByUnit {
		if binary == h || strings.HasPrefix(binary, h+"/") {
			return fmt.Errorf("--binary %s: the unit hides %s from the daemon (ProtectHome=, PrivateTmp=); copy it first, e.g. install -m 0755 %s %s, and pass --binary %s",
				binary, h, binary, DefaultBinary, DefaultBinary)
		}
	}
	return nil
}

// Result says what Write did with one file.
type Result struct {
	Path    string `json:"path"`
	Changed bool   `json:"changed"` // false: the file already had this content
}

// Plan says which files differ from what is on disk (Changed), without
// writing anything.
func Plan(files []File) []Result {
	out := make([]Result, 0, len(files))
	for _, f := range files {
		old, err := os.ReadFile(f.Path)
		out = append(out, Result{Path: f.Path, Changed: err != nil || string(old) != string(f.Data)})
	}
	return out
}

// Write puts each file that Plan reports changed in place: parent
// directories 0755, then a temporary file in the same directory, synced and
// renamed over the target, so a reader sees the old file or the new one,
// never half of one.
func Write(files []File) ([]Result, error) {
	plan := Plan(files)
	for i, f := range files {
		if !plan[i].Changed {
			continue
		}
		if err := writeAtomic(f); err != nil {
			return plan[:i], fmt.Errorf("write %s: %w", f.Path, err)
		}
	}
	return plan, nil
}

func writeAtomic(f File) (err error) {
	dir := filepath.Dir(f.Path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(f.Path)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(f.Data); err != nil {
		return err
	}
	// CreateTemp makes the file 0600; set the mode explicitly, whatever
	// the umask.
	if err = tmp.Chmod(f.Mode); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), f.Path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// NextSteps are the commands the operator runs after installing on this
// host: load the sysctl, then enable and start the unit.
func NextSteps() []string {
	return []string{
		"sysctl -p " + SysctlPath,
		"systemctl daemon-reload",
		"systemctl enable --now bulwark",
	}
}
