package daemon

import (
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/bulwark-project/bulwark/internal/hv/qemu"
	"github.com/bulwark-project/bulwark/internal/jail/seccomp"
	"github.com/bulwark-project/bulwark/internal/manager"
	"github.com/bulwark-project/bulwark/internal/measure"
	"github.com/bulwark-project/bulwark/internal/tpm"
)

// ParseTPM turns --tpm into a tpm.Config: "" or "none", "device",
// "device:PATH", "swtpm:SOCKET".
func ParseTPM(s string) (tpm.Config, error) {
	kind, arg, _ := strings.Cut(s, ":")
	switch {
	case s == "" || s == "none":
		return tpm.Config{None: true}, nil
	case kind == "device":
		return tpm.Config{Device: arg}, nil
	case kind == "swtpm" && arg != "":
		return tpm.Config{Socket: arg}, nil
	}
	return tpm.Config{}, fmt.Errorf("--tpm %q: want none, device, device:PATH or swtpm:SOCKET", s)
}

// startMeasuredLaunch opens the TPM and the event log, measures the
// hypervisor layer into PCR 11 and has the manager measure each VM start
// into PCR 12. The returned function closes both.
func startMeasuredLaunch(cfg Config, mgr *manager.Manager, log *slog.Logger) (*measure.Measurer, func(), error) {
	tc, err := ParseTPM(cfg.TPM)
	if err != nil {
		return nil, nil, err
	}
	t, err := tpm.Open(tc)
	if err != nil {
		return nil, nil, err
	}
	m, err := measure.Open(filepath.Join(cfg.StateDir, "measure"), t, log)
	if err != nil {
		t.Close()
		return nil, nil, err
	}
	closeAll := func() { m.Close(); t.Close() }
	qemu, err := exec.LookPath(cfg.QEMU)
	if err != nil {
		closeAll()
		return nil, nil, fmt.Errorf("QEMU binary %s: %w", cfg.QEMU, err)
	}
	filters, err := seccomp.Sources()
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	firmware, err := hostFirmware(cfg.QEMU)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	if err := m.MeasureHost(measure.Host{QEMU: qemu, Firmware: firmware, Seccomp: filters, Jail: !cfg.NoJail, CgroupBase: cfg.CgroupBase}); err != nil {
		closeAll()
		return nil, nil, err
	}
	mgr.SetMeasurer(m)
	info := t.Info()
	if info.HardwareRooted() {
		log.Info("measured launch", "tpm", info.String(), "pcrs", "11 host layer, 12 VM launches")
	} else {
		log.Warn("measured launch: NOTHING IS HARDWARE-ROOTED; measurements are logged only", "tpm", info.String())
	}
	return m, closeAll, nil
}

// hostFirmware is the firmware QEMU at binary loads, as the open files the
// QEMU backend passes to every VM (qemu.PinnedFirmware): measured at start,
// they are what each later launch boots.
func hostFirmware(binary string) ([]measure.Firmware, error) {
	pinned, err := qemu.PinnedFirmware(binary)
	if err != nil {
		return nil, err
	}
	out := make([]measure.Firmware, len(pinned))
	for i, fw := range pinned {
		out[i] = measure.Firmware{Name: fw.Name, File: fw.File}
	}
	return out, nil
}
