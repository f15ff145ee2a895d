package profile

// The scheduler and slab views of tasks (guest/sched.go, guest/slab.go)
// find tasks that the task list and the PID table do not reach: the run
// queues, each CPU's current task and the task_struct slab cache. Their
// offsets are optional: a kernel without one of them loses that view, and
// says so in a scan error, not the whole profile.
func init() {
	wantedOffsets = append(wantedOffsets,
		// struct rq (per CPU, symbol runqueues) and its three queues.
		opt("rq.curr"), opt("rq.idle"), opt("rq.cfs"), opt("rq.rt"), opt("rq.dl"),
		opt("cfs_rq.tasks_timeline"), opt("rb_root_cached.rb_root"), opt("rb_root.rb_node"),
		opt("rb_node.rb_left"), opt("rb_node.rb_right"),
		opt("sched_entity.run_node"), opt("sched_entity.my_q"),
		opt("rt_rq.active"), opt("rt_prio_array.queue"),
		opt("sched_rt_entity.run_list"), opt("sched_rt_entity.my_q"),
		opt("dl_rq.root"), opt("sched_dl_entity.rb_node"),
		opt("task_struct.se"), opt("task_struct.rt"), opt("task_struct.dl"),
		// Self-consistency of a task found outside the lists.
		opt("task_struct.exit_state"), opt("task_struct.stack"), opt("task_struct.real_cred"),
		// 6.2 moved current_task into struct pcpu_hot.
		opt("pcpu_hot.current_task"),
		// SLUB: the cache's object size and slab order, and each slab's
		// owner and object count (struct slab overlays struct page).
		opt("kmem_cache.size"), opt("kmem_cache.oo"), opt("slab.slab_cache"), opt("slab.counters"),
	)
	wantedSizes = append(wantedSizes, opt("page"))
}
