package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// The flags of `vm set` become a patch holding exactly the fields given.
func TestSetFlagsPatch(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // the patch as JSON; "" with err
		err  string
	}{
		{[]string{"--memory", "512"}, `{"memory_mib":512}`, ""},
		{[]string{"--vcpus", "2", "--cmdline", ""}, `{"vcpus":2,"cmdline":""}`, ""},
		{[]string{"--initrd", "", "--kernel", "/k"}, `{"kernel":"/k","initrd":""}`, ""},
		{[]string{"--nic-groups", "0=web,db", "--nic-groups", "1="}, `{"nic_groups":[{"nic":0,"groups":["web","db"]},{"nic":1,"groups":[]}]}`, ""},
		{[]string{"--disk", "/a:ro", "--disk", "/b"}, `{"disks":[{"path":"/a","read_only":true},{"path":"/b"}]}`, ""},
		{[]string{"--no-disks"}, `{"disks":[]}`, ""},
		{[]string{"--nic", "network=lab,group=web"}, `{"nics":[{"network":"lab","groups":["web"]}]}`, ""},
		{[]string{"--no-nics"}, `{"nics":[]}`, ""},
		{nil, "", "nothing to change"},
		{[]string{"--no-disks", "--disk", "/a"}, "", "contradict"},
		{[]string{"--nic-groups", "web"}, "", "IDX=g1,g2"},
		{[]string{"--nic-groups", "-1=web"}, "", "IDX=g1,g2"},
		{[]string{"--nic", "colour=red"}, "", "unknown key"},
	} {
		var sf setFlags
		fs := pflag.NewFlagSet("set", pflag.ContinueOnError)
		sf.register(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		p, err := sf.patch(fs)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: %v, want an error containing %q", tc.args, err, tc.err)
			}
			continue
		}
		b, _ := json.Marshal(p)
		if err != nil || string(b) != tc.want {
			t.Errorf("%v: %s, %v; want %s", tc.args, b, err, tc.want)
		}
	}
}
