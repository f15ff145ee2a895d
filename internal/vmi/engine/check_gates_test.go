package engine

import (
	"errors"
	"strings"
	"testing"

	"github.com/bulwark-project/bulwark/internal/hv"
	"github.com/bulwark-project/bulwark/internal/vmi/profile"
)

func TestBootError(t *testing.T) {
	withInfo := &profile.Profile{Symbols: map[string]uint64{"vmcoreinfo_data": 1}}
	without := &profile.Profile{Symbols: map[string]uint64{}}
	paging := []hv.Registers{{CR0: 1 << 31, CR3: 0x1000}}
	for _, c := range []struct {
		name string
		regs []hv.Registers
		p    *profile.Profile
		err  string
		want string
	}{
		{"no paging", []hv.Registers{{CR0: 1}}, withInfo, "find the kernel: x", "not up yet"},
		{"not published yet", paging, withInfo, "find the kernel: vmcoreinfo: no OSRELEASE= in 1 bytes of guest RAM (kernel without CONFIG_CRASH_CORE?)", "not up yet"},
		{"half written", paging, withInfo, "find the kernel: vmcoreinfo: not found in 1 bytes of guest RAM, 1 candidates rejected", "not up yet"},
		{"planted fakes", paging, withInfo, "find the kernel: vmcoreinfo: gave up after rejecting 64 candidates (planted fakes?)", "gave up"},
		{"no option in the image", paging, without, "find the kernel: vmcoreinfo: no OSRELEASE= in 1 bytes (kernel without CONFIG_CRASH_CORE?)", "CONFIG_CRASH_CORE"},
		{"other", paging, withInfo, "the guest runs kernel build a, the profile is for build b", "profile is for"},
	} {
		got := bootError(c.regs, c.p, errors.New(c.err)).Error()
		if !strings.Contains(got, c.want) || c.want == "not up yet" && strings.Contains(got, "CONFIG_CRASH_CORE") {
			t.Errorf("%s: %q", c.name, got)
		}
	}
	if bootError(paging, withInfo, nil) != nil {
		t.Error("nil error")
	}
}
