// Package x86 translates x86-64 virtual addresses to guest-physical ones by
// walking the guest's page tables in its RAM (mem.Physical), the way the
// MMU does, and reads virtual memory across pages.
//
// The page tables are guest data, so the walk trusts nothing in them: it
// visits exactly four or five levels (no loop can be made to run longer by
// a table that points at itself), reads each entry with a bounds-checked
// physical read, and reports which level stopped it and why.
package x86
