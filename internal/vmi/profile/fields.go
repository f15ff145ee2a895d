package profile

// A wanted item is a list of alternatives: every alternative that exists in
// the kernel is recorded, and a required item fails derivation when none
// does. Alternatives cover renames across kernel versions (task_struct.state
// became __state in 5.14; module.core_layout became mem[] in 6.4).
type wanted struct {
	alts     []string
	required bool
}

func req(alts ...string) wanted { return wanted{alts: alts, required: true} }
func opt(alts ...string) wanted { return wanted{alts: alts} }

// wantedSymbols are the link-time addresses a monitor starts from.
var wantedSymbols = []wanted{
	req("_text"), req("_stext"), req("_etext"),
	req("init_task"), req("sys_call_table"), req("init_top_pgt"),
	opt("__start_rodata"), opt("__end_rodata"), opt("_end"),
	opt("_sinittext"), opt("_einittext"),
	opt("idt_table"), opt("modules"), opt("module_kset"),
	opt("page_offset_base"), opt("vmemmap_base"), opt("vmalloc_base"),
	// x86-64 has no swapper_pg_dir symbol (it is a macro for init_top_pgt);
	// other architectures and old kernels do.
	opt("swapper_pg_dir"),
	opt("linux_banner"), opt("init_uts_ns"), opt("core_pattern"),
	// x64_sys_call (2024 hardening, backported to 6.1) dispatches syscalls
	// through a switch instead of loading sys_call_table.
	opt("x64_sys_call"),
	opt("phys_base"), opt("init_mm"), opt("init_pid_ns"),
	opt("__per_cpu_offset"), opt("current_task"),
}

// wantedOffsets are member paths, "type.member[.member...]".
var wantedOffsets = []wanted{
	req("task_struct.tasks"), req("task_struct.pid"), req("task_struct.tgid"),
	req("task_struct.comm"), req("task_struct.real_parent"), req("task_struct.parent"),
	req("task_struct.mm"), req("task_struct.flags"),
	req("task_struct.cred", "task_struct.real_cred"),
	req("task_struct.__state", "task_struct.state"),
	req("task_struct.start_time", "task_struct.start_boottime"),
	opt("task_struct.active_mm"), opt("task_struct.group_leader"),
	opt("task_struct.thread_group"), opt("task_struct.children"), opt("task_struct.sibling"),
	opt("task_struct.thread_pid"), opt("task_struct.pid_links"),
	opt("task_struct.sched_class"),

	req("list_head.next"), req("list_head.prev"),
	req("cred.uid"), req("cred.gid"), opt("cred.euid"), opt("cred.egid"),
	opt("kuid_t.val"),
	opt("mm_struct.pgd"),

	// The PID namespace's IDR, a second view of all tasks next to the
	// task list (struct pid -> tasks[PIDTYPE_PID] -> task_struct.pid_links).
	opt("pid_namespace.idr"), opt("idr.idr_rt"), opt("xarray.xa_head"),
	opt("xa_node.shift"), opt("xa_node.slots"), opt("pid.tasks"),

	req("module.list"), req("module.name"), req("module.state"),
	req("module.mkobj"), req("module.mkobj.kobj"), req("module.mkobj.kobj.entry"),
	req("module.core_layout", "module.mem"),
	opt("module.core_layout.base", "module.mem[0].base"),
	opt("module.core_layout.size", "module.mem[0].size"),
	opt("module.init_layout.base"), opt("module.init_layout.size"),
	// The module's symbol table as kallsyms reads it (mod->kallsyms, which
	// points at mod->core_kallsyms once the module is live).
	opt("module.kallsyms"), opt("module.core_kallsyms"),
	opt("mod_kallsyms.symtab"), opt("mod_kallsyms.num_symtab"),
	opt("mod_kallsyms.strtab"), opt("mod_kallsyms.typetab"),
	opt("module_kobject.kobj"), opt("module_kobject.mod"),

	req("kobject.name"), req("kobject.entry"), req("kobject.parent"), req("kobject.kset"),
	req("kset.list"), opt("kset.kobj"),
}

// wantedSizes are sizeof() of whole types.
var wantedSizes = []wanted{
	req("task_struct"), req("module"), req("cred"), req("list_head"),
	req("kobject"), opt("mm_struct"), opt("module_layout"), opt("module_memory"),
}
