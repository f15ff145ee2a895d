package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// qemuImgTimeout bounds one qemu-img run (create, resize, check, info):
// none of them reads or writes guest data, only metadata.
const qemuImgTimeout = 2 * time.Minute

// maxQemuImgOutput caps what is kept of qemu-img's stdout and stderr.
const maxQemuImgOutput = 1 << 20

// capBuffer keeps the first max bytes written to it and drops the rest.
type capBuffer struct {
	bytes.Buffer
	max int
}

func (c *capBuffer) Write(p []byte) (int, error) {
	if room := c.max - c.Len(); room > 0 {
		if len(p) > room {
			c.Buffer.Write(p[:room])
		} else {
			c.Buffer.Write(p)
		}
	}
	return len(p), nil
}

// qemuImg runs qemu-img with the pool directory as its fd 3 and returns
// its standard output. Errors carry the operation and qemu-img's message.
func (s *Service) qemuImg(ctx context.Context, p *Pool, op string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, qemuImgTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.qemuImgBin, args...)
	cmd.ExtraFiles = []*os.File{p.fdir}
	out, errb := &capBuffer{max: maxQemuImgOutput}, &capBuffer{max: 4096}
	cmd.Stdout, cmd.Stderr = out, errb
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		msg = strings.ReplaceAll(msg, "/proc/self/fd/3/", "")
		if msg == "" {
			msg = strings.TrimSpace(out.String())
		}
		return nil, fmt.Errorf("qemu-img %s: %v: %s", op, err, clip(msg))
	}
	return out.Bytes(), nil
}

// blockJSON is a qemu-img json: filename that opens file with an explicit
// format driver and, for qcow2, no backing file: qemu-img never resolves a
// name from the image's header.
func blockJSON(format, file string) string {
	m := map[string]any{
		"driver": format,
		"file":   map[string]any{"driver": "file", "filename": qemuPath(file)},
	}
	if format == FormatQcow2 {
		m["backing"] = nil
	}
	b, _ := json.Marshal(m)
	return "json:" + string(b)
}

// imgInfo is the part of `qemu-img info --output=json` we read.
type imgInfo struct {
	VirtualSize     int64  `json:"virtual-size"`
	Format          string `json:"format"`
	BackingFilename string `json:"backing-filename"`
	FormatSpecific  struct {
		Data struct {
			DataFile string `json:"data-file"`
			Corrupt  bool   `json:"corrupt"`
		} `json:"data"`
	} `json:"format-specific"`
}

// info runs qemu-img info (-U: no lock needed, the file may be attached)
// on a file whose header we already parsed, and checks the answer.
func (s *Service) info(ctx context.Context, p *Pool, file, format string) (*imgInfo, error) {
	out, err := s.qemuImg(ctx, p, "info", "info", "--output=json", "-U", blockJSON(format, file))
	if err != nil {
		return nil, err
	}
	var in imgInfo
	if err := json.Unmarshal(out, &in); err != nil {
		return nil, fmt.Errorf("qemu-img info: unreadable answer: %w", err)
	}
	switch {
	case in.Format != format:
		return nil, fmt.Errorf("qemu-img info: format %q, expected %q", in.Format, format)
	case in.VirtualSize <= 0 || in.VirtualSize > MaxVolumeSize:
		return nil, fmt.Errorf("qemu-img info: virtual size %d out of range 1..%d", in.VirtualSize, int64(MaxVolumeSize))
	case in.FormatSpecific.Data.DataFile != "":
		return nil, fmt.Errorf("qemu-img info: external data file %q", clip(in.FormatSpecific.Data.DataFile))
	case in.FormatSpecific.Data.Corrupt:
		return nil, fmt.Errorf("qemu-img info: image is marked corrupt")
	}
	return &in, nil
}

// check runs qemu-img check on a qcow2 file: a damaged table could
// otherwise make QEMU read or write outside the guest's clusters.
func (s *Service) check(ctx context.Context, p *Pool, file string) error {
	_, err := s.qemuImg(ctx, p, "check", "check", "-q", blockJSON(FormatQcow2, file))
	return err
}

// create makes a new image file of size bytes; for a clone, backing is
// the base's file name and backingFormat its format (-u: qemu-img does not
// open the base; its size comes from our record).
func (s *Service) create(ctx context.Context, p *Pool, file, format string, size int64, backing, backingFormat string) error {
	// The file is made here, 0600, so that qemu-img (which creates 0644
	// under the usual umask) only truncates and fills it.
	f, err := p.createFile(file)
	if err != nil {
		return err
	}
	f.Close()
	args := []string{"create", "-q", "-f", format}
	if format == FormatQcow2 {
		args = append(args, "-o", "cluster_size=65536,lazy_refcounts=off")
	}
	if backing != "" {
		args = append(args, "-u", "-b", backing, "-F", backingFormat)
	}
	args = append(args, qemuPath(file), strconv.FormatInt(size, 10))
	_, err = s.qemuImg(ctx, p, "create", args...)
	return err
}

// resize grows an image to size bytes.
func (s *Service) resize(ctx context.Context, p *Pool, file, format string, size int64) error {
	_, err := s.qemuImg(ctx, p, "resize", "resize", "-q", blockJSON(format, file), strconv.FormatInt(size, 10))
	return err
}
