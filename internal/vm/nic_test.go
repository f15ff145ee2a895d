package vm

import (
	"errors"
	"io/fs"
	"testing"
	"time"
)

type fakeFile struct{}

func (fakeFile) Name() string       { return "k" }
func (fakeFile) Size() int64        { return 1 }
func (fakeFile) Mode() fs.FileMode  { return 0o644 }
func (fakeFile) ModTime() time.Time { return time.Time{} }
func (fakeFile) IsDir() bool        { return false }
func (fakeFile) Sys() any           { return nil }

func TestNICNetworkFields(t *testing.T) {
	stat := func(string) (fs.FileInfo, error) { return fakeFile{}, nil }
	cases := []struct {
		nic   NIC
		field string
	}{
		{NIC{Network: "lan", IP: "10.0.0.2", Groups: []string{"web", "db"}}, ""},
		{NIC{Network: "lan"}, ""},
		{NIC{IP: "10.0.0.2"}, "nics[0].network"},
		{NIC{Groups: []string{"web"}}, "nics[0].network"},
		{NIC{Network: "lan", IP: "10.0.0.300"}, "nics[0].ip"},
		{NIC{Network: "lan", IP: "fe80::1"}, "nics[0].ip"},
		{NIC{Network: "lan", Groups: []string{"Web"}}, "nics[0].groups[0]"},
		{NIC{Network: "lan", Groups: []string{"web", "web"}}, "nics[0].groups[1]"},
		{NIC{Network: "lan", Socket: "/run/x.sock"}, "nics[0].socket"},
		{NIC{Socket: "/run/systemd/journal/socket"}, "nics[0].socket"},
		{NIC{Network: "Lan"}, "nics[0].network"},
	}
	for _, c := range cases {
		s := Spec{Name: "a", MemoryMiB: 128, Kernel: "/k", NICs: []NIC{c.nic}}
		s.Normalize()
		err := s.Validate(stat)
		var fe *FieldError
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%+v: %v", c.nic, err)
		case c.field != "" && (!errors.As(err, &fe) || fe.Field != c.field):
			t.Errorf("%+v: got %v, want field %s", c.nic, err, c.field)
		}
	}
}
