package engine

import (
	"fmt"
	"strings"

	"github.com/bulwark-project/bulwark/internal/vmi/guest"
	"github.com/bulwark-project/bulwark/internal/vmi/monitor"
)

// checkHiddenTasks looks for tasks beyond both process views: a task that a
// CPU runs, a run queue holds or the task_struct slab cache contains, but
// that neither the task list nor the PID table reaches, is hidden_task. A
// view that fails is a scan_error naming it; the other views still count.
// Each view's cost goes into the report's Scanned counts.
func checkHiddenTasks(k *guest.Kernel, req monitor.Request, r *Report, add func(Finding), scanErr func(string, error)) {
	scan, err := k.HiddenTasks(req.Regs, true)
	for name, n := range scan.Scanned {
		r.Scanned[name] = n
	}
	if err != nil {
		scanErr("hidden tasks", err)
		return
	}
	for _, view := range []string{guest.ViewCurrent, guest.ViewRunQueue, guest.ViewSlab} {
		if e := scan.Errors[view]; e != nil {
			scanErr("the "+view+" view of tasks", e)
		}
	}
	for _, h := range scan.Hidden {
		add(Finding{Kind: "hidden_task",
			Summary: fmt.Sprintf("task %d (%s) is seen by %s but is in neither the task list nor the PID table",
				h.PID, h.Comm, strings.Join(h.Views, ", ")),
			Evidence: map[string]any{"pid": h.PID, "tgid": h.TGID, "comm": h.Comm, "uid": h.UID,
				"views": h.Views, "task": fmt.Sprintf("%#x", h.Task)}})
	}
}
