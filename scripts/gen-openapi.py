#!/usr/bin/env python3
"""Writes internal/api/openapi.json. Edit here, run, commit both; the Go test
TestOpenAPIMatchesRoutes fails if the file and the route table disagree."""
import json, os

def ref(n): return {"$ref": "#/components/schemas/" + n}
def jbody(schema): return {"content": {"application/json": {"schema": schema}}}
def ok(desc, schema=None, code="200"):
    r = {"description": desc}
    if schema: r.update(jbody(schema))
    return {code: r}
ERR = {k: {"description": d, **jbody(ref("Error"))} for k, d in [
    ("400", "invalid request; `field` names the offending field"),
    ("404", "no such VM"), ("409", "conflict with the VM's current state or name"),
    ("403", "forbidden: the caller lacks the privilege or the change would escalate"),
    ("413", "request body too large"), ("500", "internal error"), ("503", "service not configured"),
    ("507", "not enough space in the storage pool"),
    ("401", "invalid credentials: the same answer for an unknown user, a disabled one or a wrong password"),
    ("429", "too many failed logins for this user name or from this source; the Retry-After header says in how many seconds to try again")]}
NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$", "maxLength": 63}}

AUDITQ = [{"name": n, "in": "query", "schema": sch} for n, sch in [
    ("user", {"type": "string"}), ("object", {"type": "string"}), ("since", {"type": "string", "format": "date-time"}),
    ("until", {"type": "string", "format": "date-time"}), ("after", {"type": "integer", "description": "only records with a higher seq (cursor when oldest first)"}),
    ("before", {"type": "integer", "description": "only records with a lower seq (cursor when newest first)"}),
    ("limit", {"type": "integer", "minimum": 1, "maximum": 1000})]]

NAMEBODY = {"type": "object", "additionalProperties": False, "required": ["name"], "properties": {"name": {"type": "string"}}}
IDP = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
POOLP = {**NAME, "name": "pool"}
SNAPP = {**NAME, "name": "snap"}

def op(opid, summary, priv, responses, params=None, body=None, errors=("400", "404", "409", "500")):
    o = {"operationId": opid, "summary": summary, "x-bulwark-privilege": priv, "responses": dict(responses)}
    for e in errors: o["responses"][e] = ERR[e]
    if params: o["parameters"] = params
    if body: o["requestBody"] = {"required": True, **jbody(body)}
    return o

POOLBODY = {"type": "object", "additionalProperties": False, "required": ["name"], "properties": {
    "name": {"type": "string"}, "parent": {"type": "string", "description": "parent pool; empty or host: the root"},
    "cpu": {"type": "object", "description": "millicores", "properties": {"reservation": {"type": "integer"}, "limit": {"type": "integer"}, "shares": {"type": "string"}}},
    "memory": {"type": "object", "description": "MiB", "properties": {"reservation": {"type": "integer"}, "limit": {"type": "integer"}, "shares": {"type": "string"}}},
    "disk": {"type": "object", "properties": {"shares": {"type": "string"}, "read_bytes_per_sec": {"type": "integer"}, "write_bytes_per_sec": {"type": "integer"}, "read_iops": {"type": "integer"}, "write_iops": {"type": "integer"}}},
    "expandable": {"type": "boolean"}}}
vmop = lambda opid, s, priv, extra=None: op(opid, s, priv, ok("the VM after the operation", ref("VM")), [NAME] + (extra or []))
spec = {
  "openapi": "3.0.3",
  "info": {"title": "Bulwark API", "version": "v1",
           "description": "Control-plane API of the Bulwark daemon. Served on a Unix socket (mode 0600) by default. Every route names the privilege it needs in x-bulwark-privilege."},
  "paths": {
    "/api/v1/health": {"get": op("health", "Liveness check", "public", ok("daemon is up", {"type": "object", "properties": {"status": {"type": "string"}}}), errors=())},
    "/api/v1/openapi.json": {"get": op("openapi", "This document", "public", ok("OpenAPI description", {"type": "object"}), errors=())},
    "/api/v1/login": {"post": op("login", "Exchange a user name and password for a session token (12 h); 5 failures in 15 min lock the name and the source for 15 min", "public",
        ok("the session and its secret, shown once; send it as Authorization: Bearer", {"type": "object", "properties": {"token": ref("Token"), "secret": {"type": "string"}}}),
        body={"type": "object", "additionalProperties": False, "required": ["user", "password"], "properties": {"user": {"type": "string"}, "password": {"type": "string", "format": "password"}}},
        errors=("400", "401", "429", "503"))},
    "/api/v1/whoami": {"get": op("whoami", "The caller: user, groups, token scope and effective privileges on a path", "authenticated",
        ok("identity", {"type": "object", "properties": {"user": {"type": "string"}, "source": {"type": "string"}, "groups": {"type": "array", "items": {"type": "string"}},
            "token_scope": {"type": "array", "items": {"type": "string"}}, "path": {"type": "string"}, "privileges": {"type": "array", "items": {"type": "string"}}}}),
        [{"name": "path", "in": "query", "schema": {"type": "string", "default": "/"}}], errors=("400", "401"))},
    "/api/v1/version": {"get": op("version", "Daemon version", "Monitor.Read", ok("version", {"type": "object", "additionalProperties": {"type": "string"}}), errors=("500",))},
    "/api/v1/host": {"get": op("host", "Host facts: backend, accelerator chosen for auto and why", "Monitor.Read", ok("host", ref("Host")), errors=("500",))},
    "/api/v1/vms": {
      "get": op("listVMs", "List VMs", "VM.Audit", ok("all VMs ordered by name", {"type": "array", "items": ref("VM")}), errors=("500",)),
      "post": op("createVM", "Define a VM (state defined)", "VM.Create", ok("created", ref("VM"), "201"), body=ref("Spec"), errors=("400", "409", "413", "500")),
    },
    "/api/v1/vms/{name}": {
      "get": op("getVM", "Show a VM", "VM.Audit", ok("the VM", ref("VM")), [NAME], errors=("404", "500")),
      "patch": op("updateVM", "Change a VM's definition (optional fields; lists replace the whole list) and get the change as a diff. Only when defined, stopped or crashed (409 naming the state), except nic_groups/nics[N].groups, which apply at once to a running VM. Validated as create; newly named host paths need VM.HostPaths on /, networks and joined or left groups need Network.Attach", "VM.Config",
          ok("the VM after the change and the changed fields (empty: nothing changed)", ref("VMUpdate")), [NAME], body=ref("VMPatch"), errors=("400", "403", "404", "409", "413", "500")),
      "delete": op("deleteVM", "Delete a VM that is not running", "VM.Delete", {"204": {"description": "deleted"}}, [NAME], errors=("404", "409", "500")),
    },
    "/api/v1/vms/{name}/start": {"post": vmop("startVM", "Start a defined, stopped or crashed VM; returns once running or crashed (reason holds the hypervisor's message)", "VM.PowerOn")},
    "/api/v1/vms/{name}/stop": {"post": vmop("stopVM", "ACPI power-off, then kill after the timeout (or at once with force)", "VM.PowerOff", [
        {"name": "force", "in": "query", "schema": {"type": "boolean", "default": False}},
        {"name": "timeout", "in": "query", "description": "seconds to wait for the guest, default 30", "schema": {"type": "integer", "minimum": 1, "maximum": 600}}])},
    "/api/v1/vms/{name}/pause": {"post": vmop("pauseVM", "Freeze the guest's vCPUs", "VM.PowerOff")},
    "/api/v1/vms/{name}/resume": {"post": vmop("resumeVM", "Continue a paused guest", "VM.PowerOn")},
    "/api/v1/vms/{name}/console/log": {"get": op("vmConsoleLog", "Tail of the serial console log (guest-controlled bytes)", "VM.Console",
        {"200": {"description": "raw bytes", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
        [NAME, {"name": "bytes", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 4194304, "default": 65536}}], errors=("400", "404", "500"))},
    "/api/v1/vms/{name}/console": {"get": op("vmConsole", "Interactive serial console over WebSocket (see docs/console.md): one holder at a time by policy; force=1 takes over (needs VM.Console.Takeover), wait=1 queues; recorded in asciicast v2", "VM.Console",
        {"101": {"description": "switching to WebSocket; a refusal arrives as a {\"type\":\"closed\"} message and close code 4001"}},
        [NAME, {"name": "force", "in": "query", "schema": {"type": "string", "enum": ["0", "1"]}}, {"name": "wait", "in": "query", "schema": {"type": "string", "enum": ["0", "1"]}}],
        errors=("403", "404", "409", "503"))},
    "/api/v1/vms/{name}/console/sessions": {"get": op("vmConsoleSessions", "Who holds and who waits for the VM's console, and its policy", "VM.Audit",
        ok("sessions", ref("ConsoleSessions")), [NAME], errors=("404", "503"))},
    "/api/v1/vms/{name}/console/policy": {"put": op("setConsolePolicy", "Replace the VM's console policy (applies to sessions opened afterwards)", "VM.Config",
        ok("the VM after the change", ref("VM")), [NAME], body=ref("ConsolePolicy"), errors=("400", "404", "413", "500"))},
    "/api/v1/console/recordings": {"get": op("listRecordings", "Console session recordings (asciicast v2), oldest first", "Audit.Read",
        ok("recordings", {"type": "array", "items": ref("Recording")}), [{"name": "vm", "in": "query", "schema": {"type": "string"}}, {"name": "user", "in": "query", "schema": {"type": "string"}}], errors=("503",))},
    "/api/v1/console/recordings/{id}": {"get": op("getRecording", "One recording as an asciicast v2 file (plays with asciinema play)", "Audit.Read",
        {"200": {"description": "asciicast v2", "content": {"application/x-asciicast": {"schema": {"type": "string"}}}}}, [IDP], errors=("400", "404", "503"))},
    "/api/v1/vms/{name}/vmi/ps": {"get": op("vmiProcesses", "Processes rebuilt from guest memory by walking the kernel's task list (introspection, in the monitor process)", "Monitor.Read",
        ok("processes and how long the walk took", ref("VMIView")), [NAME], errors=("404", "409", "500", "503"))},
    "/api/v1/vms/{name}/vmi/pids": {"get": op("vmiPIDTable", "Tasks found through the PID namespace's table, a view independent of the task list", "Monitor.Read",
        ok("tasks", ref("VMIView")), [NAME], errors=("404", "409", "500", "503"))},
    "/api/v1/vms/{name}/vmi/modules": {"get": op("vmiModules", "Kernel modules from the guest's module list (what lsmod shows)", "Monitor.Read",
        ok("modules", ref("VMIView")), [NAME], errors=("404", "409", "500", "503"))},
    "/api/v1/vms/{name}/vmi/sysfs-modules": {"get": op("vmiSysfsModules", "Kernel modules from module_kset's kobjects (/sys/module), an independent view", "Monitor.Read",
        ok("modules", ref("VMIView")), [NAME], errors=("404", "409", "500", "503"))},
    "/api/v1/vms/{name}/vmi/syscalls": {"get": op("vmiSyscalls", "sys_call_table entries, each named and checked against the kernel image and kernel text", "Monitor.Read",
        ok("entries", ref("VMIView")), [NAME], errors=("404", "409", "500", "503"))},
    "/api/v1/vms/{name}/vmi/idt": {"get": op("vmiIDT", "IDT exception vectors and 0x80, checked against kernel text", "Monitor.Read",
        ok("gates", ref("VMIView")), [NAME], errors=("404", "409", "500", "503"))},
    "/api/v1/vms/{name}/vmi/info": {"get": op("vmiInfo", "The attached guest kernel: release, build id, KASLR offset, phys_base, baseline size", "Monitor.Read",
        ok("attachment", {"type": "object"}), [NAME], errors=("404", "409", "500", "503"))},
    "/api/v1/vms/{name}/vmi/check": {"post": op("vmiCheck", "Run every detection now (hidden processes, syscall and IDT hooks, kernel text and rodata changes); new findings become events", "Monitor.Read",
        ok("the scan report", {"type": "object"}), [NAME], errors=("404", "409", "500", "503"))},
    "/api/v1/vms/{name}/vmi/dump": {"get": op("vmiDump", "Guest-physical memory as a LiME image (Volatility 3 opens it); audited", "Monitor.Respond",
        {"200": {"description": "LiME image", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}, [NAME], errors=("404", "409", "500"))},
    "/api/v1/events": {"get": op("listEvents", "Monitoring events (JSON lines), newest last", "Monitor.Read",
        {"200": {"description": "events", "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}},
        [{"name": "bytes", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 4194304, "default": 65536}}], errors=("400", "503"))},
    "/api/v1/networks": {
      "get": op("listNetworks", "List networks", "Network.Audit", ok("networks", {"type": "array", "items": ref("Network")}), errors=("503",)),
      "post": op("createNetwork", "Create a network (isolated L2 segment, optional uplink)", "Network.Config", ok("created", ref("Network"), "201"), body=ref("Network"), errors=("400", "409", "413", "503")),
    },
    "/api/v1/networks/{name}": {
      "get": op("getNetwork", "Show a network", "Network.Audit", ok("network", ref("Network")), [NAME], errors=("404", "503")),
      "delete": op("deleteNetwork", "Delete a network no VM uses", "Network.Config", {"204": {"description": "deleted"}}, [NAME], errors=("404", "409", "503")),
    },
    "/api/v1/security-groups": {
      "get": op("listSecurityGroups", "List security groups", "Firewall.Read", ok("groups", {"type": "array", "items": ref("SecurityGroup")}), errors=("503",)),
      "post": op("createSecurityGroup", "Create a security group; the new policy is compiled and installed atomically", "Firewall.Config", ok("created", ref("SecurityGroup"), "201"), body=ref("SecurityGroup"), errors=("400", "409", "413", "503")),
    },
    "/api/v1/security-groups/{name}": {
      "get": op("getSecurityGroup", "Show a security group and its ordered rules", "Firewall.Read", ok("group", ref("SecurityGroup")), [NAME], errors=("404", "503")),
      "delete": op("deleteSecurityGroup", "Delete a group no NIC or rule refers to", "Firewall.Config", {"204": {"description": "deleted"}}, [NAME], errors=("404", "409", "503")),
    },
    "/api/v1/security-groups/{name}/rules": {"post": op("addRule", "Insert a rule (appended unless position is given); live, atomic, existing flows re-evaluated", "Firewall.Config",
        ok("the group after the change", ref("SecurityGroup")), [NAME, {"name": "position", "in": "query", "schema": {"type": "integer", "minimum": 0}}], body=ref("Rule"), errors=("400", "404", "413", "503"))},
    "/api/v1/security-groups/{name}/rules/{id}": {"delete": op("removeRule", "Remove a rule; flows it allowed are cut", "Firewall.Config",
        ok("the group after the change", ref("SecurityGroup")), [NAME, {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}], errors=("404", "503"))},
    "/api/v1/ip-sets": {
      "get": op("listIPSets", "List IP sets", "Firewall.Read", ok("ip sets", {"type": "array", "items": ref("IPSet")}), errors=("503",)),
      "post": op("createIPSet", "Create an IP set usable as a rule's remote", "Firewall.Config", ok("created", ref("IPSet"), "201"), body=ref("IPSet"), errors=("400", "409", "413", "503")),
    },
    "/api/v1/ip-sets/{name}": {"delete": op("deleteIPSet", "Delete an IP set no rule refers to", "Firewall.Config", {"204": {"description": "deleted"}}, [NAME], errors=("404", "409", "503"))},
    "/api/v1/ports": {"get": op("listPorts", "Switch ports with rx/tx counters and drops by reason", "Firewall.Read", ok("ports", {"type": "array", "items": ref("Port")}), errors=("503",))},
    "/api/v1/firewall/rule-hits": {"get": op("ruleHits", "Hit counter of every rule", "Firewall.Read", ok("hits", {"type": "array", "items": {"type": "object", "properties": {"group": {"type": "string"}, "rule_id": {"type": "string"}, "hits": {"type": "integer"}}}}), errors=("503",))},
    "/api/v1/firewall/log": {"get": op("firewallLog", "Tail of the firewall event log (JSON lines, rate-limited), filtered by network, VM and time among the last `bytes` bytes", "Firewall.Read",
        {"200": {"description": "JSON lines", "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}},
        [{"name": "bytes", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 4194304}},
         {"name": "network", "in": "query", "description": "only lines of this network", "schema": {"type": "string"}},
         {"name": "vm", "in": "query", "description": "only lines of this VM (its NICs as in or out port, or the VM whose port dropped)", "schema": {"type": "string"}},
         {"name": "since", "in": "query", "description": "only lines at or after this time", "schema": {"type": "string", "format": "date-time"}},
         {"name": "until", "in": "query", "description": "only lines at or before this time", "schema": {"type": "string", "format": "date-time"}}], errors=("400", "503"))},
    "/api/v1/attestation/eventlog": {"get": op("attestEventLog", "The measured-launch TCG crypto-agile event log (PCR 11 host layer, PCR 12 VM launches; docs/attestation.md)", "Attestation.Read",
        {"200": {"description": "raw TCG event log", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}, errors=("500", "503"))},
    "/api/v1/attestation/pcrs": {"get": op("attestPCRs", "The TPM's PCRs 11-13, the values the event log replays to, and whether they agree", "Attestation.Read",
        ok("PCR values (hex) keyed by index", {"type": "object", "required": ["tpm", "kind", "hardware_rooted", "replayed", "agree"], "properties": {
            "tpm": {"type": "string"}, "kind": {"type": "string", "enum": ["none", "device", "swtpm"]}, "hardware_rooted": {"type": "boolean"},
            "pcrs": {"type": "object", "additionalProperties": {"type": "string"}}, "replayed": {"type": "object", "additionalProperties": {"type": "string"}},
            "agree": {"type": "boolean"}, "mismatch": {"type": "string"}}}), errors=("500", "503"))},
    "/api/v1/attestation/status": {"get": op("attestStatus", "Remote attestation on this host: TPM, whether quotes are possible, enforcement, the latest verdict a verifier pushed, runtime integrity of the daemon and QEMU processes", "Attestation.Read",
        ok("status", {"type": "object"}), errors=("500", "503"))},
    "/api/v1/attestation/keys": {"get": op("attestKeys", "The host's EK (PKIX DER) and EK certificate if any, and the AK's public area with its creation evidence (for registration with a verifier)", "Attestation.Read",
        ok("keys", {"type": "object"}), errors=("500", "503"))},
    "/api/v1/attestation/activate": {"post": op("attestActivate", "TPM2_ActivateCredential: recover a verifier's secret encrypted to the EK for the AK's name (registration)", "Attestation.Config",
        ok("the recovered secret", {"type": "object", "properties": {"secret": {"type": "string", "format": "byte"}}}),
        body={"type": "object", "additionalProperties": False, "required": ["credential", "secret"], "properties": {"credential": {"type": "string", "format": "byte"}, "secret": {"type": "string", "format": "byte"}}},
        errors=("400", "500", "503"))},
    "/api/v1/attestation/quote": {"get": op("attestQuote", "Evidence for a verifier: a TPM quote of PCRs 11-13 over SHA-256(domain, nonce, SHA-256(report)), the PCR values, the event log and the report, all read under one lock", "Attestation.Read",
        ok("evidence", {"type": "object", "properties": {"quote": {"type": "string", "format": "byte"}, "signature": {"type": "string", "format": "byte"},
            "pcrs": {"type": "object", "additionalProperties": {"type": "string", "format": "byte"}}, "event_log": {"type": "string", "format": "byte"}, "report": {"type": "string", "format": "byte"}}}),
        [{"name": "nonce", "in": "query", "required": True, "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}], errors=("400", "500", "503"))},
    "/api/v1/attestation/verdict": {"put": op("attestSetVerdict", "A verifier's verdict on this host (pushed on every change); with --attest-enforce, VM starts are refused while it is untrusted", "Attestation.Config",
        {"204": {"description": "recorded"}}, body={"type": "object"}, errors=("400", "500", "503"))},
    "/api/v1/pools": {
      "get": op("listResourcePools", "Resource pools the caller may audit (the root, host, first): definition, accounts, holders, VMs and their measured use", "Pool.Audit", ok("pools", {"type": "array", "items": {"type": "object"}}), errors=("500", "503")),
      "post": op("createResourcePool", "Create a resource pool (Pool.Config on the parent pool's path, /pools for the root); refused when its reservation does not fit", "Pool.Config", ok("the pool", {"type": "object"}, "201"), body=POOLBODY, errors=("400", "403", "409", "500", "503"))},
    "/api/v1/pools/{name}": {
      "get": op("getResourcePool", "One resource pool (host: the root)", "Pool.Audit", ok("the pool", {"type": "object"}), [NAME], errors=("404", "500", "503")),
      "put": op("updateResourcePool", "Replace a pool's definition (not its name); checked against the running VMs, nothing half-applied", "Pool.Config", ok("the pool", {"type": "object"}), [NAME], body=POOLBODY, errors=("400", "403", "404", "409", "500", "503")),
      "delete": op("deleteResourcePool", "Delete a pool that holds no VMs and no pools", "Pool.Config", {"204": {"description": "deleted"}}, [NAME], errors=("404", "409", "500", "503"))},
    "/api/v1/audit": {"get": op("listAudit", "Audit records (every mutating call: who, what, object, result, time, source)", "Audit.Read",
        ok("records, newest first unless order=asc", {"type": "array", "items": ref("AuditRecord")}),
        AUDITQ + [{"name": "order", "in": "query", "schema": {"type": "string", "enum": ["desc", "asc"], "default": "desc"}}], errors=("400", "503"))},
    "/api/v1/audit/export": {"get": op("exportAudit", "Audit records, oldest first, as JSON lines or RFC 5424 syslog messages (no limit unless given)", "Audit.Read",
        {"200": {"description": "format=jsonl: one record's JSON per line; format=syslog: one RFC 5424 message per line (facility authpriv, MSGID the action, no structured data, MSG the record's JSON)",
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}, "text/plain": {"schema": {"type": "string"}}}}},
        AUDITQ + [{"name": "format", "in": "query", "schema": {"type": "string", "enum": ["jsonl", "syslog"], "default": "jsonl"}}], errors=("400", "503"))},
    "/api/v1/audit/verify": {"get": op("verifyAudit", "Check the hash chain, the signed checkpoints and the anchor files; names each edited, removed or reordered record, a cut tail and a wiped log", "Audit.Read",
        ok("verification report", {"type": "object", "properties": {"ok": {"type": "boolean"}, "records": {"type": "integer"}, "checkpoints": {"type": "integer"},
            "anchor_files": {"type": "array", "items": {"type": "string"}, "description": "local anchor files compared"},
            "anchors": {"type": "integer", "description": "anchors compared (record heads and signed checkpoints)"},
            "unanchored": {"type": "integer", "description": "records after the newest anchor, protected by the chain alone (a crash leaves up to one checkpoint interval)"},
            "signing": {"type": "boolean", "description": "false when the log failed verification at startup: it records but signs no checkpoints"},
            "public_key": {"type": "string", "description": "the Ed25519 key that verifies checkpoints, hex"},
            "problems": {"type": "array", "items": {"type": "object", "properties": {"seq": {"type": "integer"}, "index": {"type": "integer"}, "kind": {"type": "string"}, "detail": {"type": "string"}}}}}}), errors=("503",))},
    "/api/v1/privileges": {"get": op("listPrivileges", "The privilege catalogue", "Role.Manage", ok("privileges", {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}, "description": {"type": "string"}}}}), errors=())},
    "/api/v1/roles": {
      "get": op("listRoles", "Built-in and custom roles", "Role.Manage", ok("roles", {"type": "array", "items": ref("Role")}), errors=("503",)),
      "post": op("createRole", "Create a role; a new role holds no privileges", "Role.Manage", ok("created", ref("Role"), "201"), body=NAMEBODY, errors=("400", "409", "503")),
    },
    "/api/v1/roles/{name}": {"delete": op("deleteRole", "Delete a custom role that no permission entry names (409 names the entries that still do)", "Role.Manage",
        {"204": {"description": "deleted"}}, [NAME], errors=("403", "404", "409", "503"))},
    "/api/v1/roles/{name}/privileges": {"post": op("addRolePrivilege", "Add one privilege to a custom role (the caller must hold it on /)", "Role.Manage",
        ok("the role", ref("Role")), [NAME], body={"type": "object", "required": ["privilege"], "additionalProperties": False, "properties": {"privilege": {"type": "string"}}}, errors=("400", "403", "404", "503"))},
    "/api/v1/roles/{name}/privileges/{priv}": {"delete": op("removeRolePrivilege", "Remove one privilege from a custom role", "Role.Manage",
        ok("the role", ref("Role")), [NAME, {"name": "priv", "in": "path", "required": True, "schema": {"type": "string"}}], errors=("400", "403", "404", "503"))},
    "/api/v1/users": {
      "get": op("listUsers", "List users", "User.Manage", ok("users", {"type": "array", "items": ref("User")}), errors=("503",)),
      "post": op("createUser", "Create a user (no permissions until granted)", "User.Manage", ok("created", ref("User"), "201"), body=NAMEBODY, errors=("400", "409", "503")),
    },
    "/api/v1/users/{name}": {
      "patch": op("updateUser", "Disable/enable a user or set their groups; disabling ends their tokens at once", "User.Manage", ok("the user", ref("User")), [NAME],
          body={"type": "object", "additionalProperties": False, "properties": {"disabled": {"type": "boolean"}, "groups": {"type": "array", "items": {"type": "string"}}}}, errors=("400", "403", "404", "503")),
      "delete": op("deleteUser", "Delete a user with their tokens and permission entries", "User.Manage", {"204": {"description": "deleted"}}, [NAME], errors=("404", "503")),
    },
    "/api/v1/users/{name}/password": {"post": op("setPassword", "Set a user's password (12 to 256 bytes, stored as an argon2id hash, never returned); ends the user's sessions", "User.Manage",
        {"204": {"description": "password set"}}, [NAME],
        body={"type": "object", "additionalProperties": False, "required": ["password"], "properties": {"password": {"type": "string", "format": "password", "minLength": 12, "maxLength": 256}}}, errors=("400", "404", "503"))},
    "/api/v1/tokens": {
      "get": op("listTokens", "List API tokens (never their secrets)", "User.Manage", ok("tokens", {"type": "array", "items": ref("Token")}), errors=("503",)),
      "post": op("createToken", "Issue an API token; the secret is returned once", "User.Manage",
          ok("token and secret", {"type": "object", "properties": {"token": ref("Token"), "secret": {"type": "string"}}}, "201"),
          body={"type": "object", "additionalProperties": False, "required": ["user"], "properties": {"user": {"type": "string"}, "ttl_seconds": {"type": "integer"}, "description": {"type": "string"},
              "scope": {"type": "array", "items": {"type": "string"}, "description": "narrow the token to these privileges"}}}, errors=("400", "503")),
    },
    "/api/v1/tokens/{id}": {"delete": op("revokeToken", "Revoke a token; it fails from the next request on", "User.Manage", {"204": {"description": "revoked"}}, [IDP], errors=("404", "503"))},
    "/api/v1/permissions": {
      "get": op("listPermissions", "List permission entries", "Permission.Manage", ok("entries", {"type": "array", "items": ref("Permission")}), errors=("503",)),
      "post": op("grantPermission", "Grant a role to a user or group on an object path; only roles whose privileges the caller holds there, never to oneself", "Permission.Manage",
          ok("created", ref("Permission"), "201"), body=ref("Permission"), errors=("400", "403", "503")),
    },
    "/api/v1/permissions/{id}": {"delete": op("revokePermission", "Remove a permission entry (same no-escalation rules)", "Permission.Manage", {"204": {"description": "removed"}}, [IDP], errors=("403", "404", "503"))},
    "/api/v1/images": {"get": op("listImages", "Images of the registry (STATE/images): manifests with file digests and provenance; an unreadable manifest is listed with its error", "Datastore.Audit",
        ok("images ordered by name", {"type": "array", "items": ref("ImageEntry")}), errors=("500",))},
    "/api/v1/images/{name}": {"get": op("getImage", "An image's manifest (files verified on use, not here: bulwark image verify)", "Datastore.Audit",
        ok("the manifest", ref("ImageManifest")), [NAME], errors=("400", "404", "500"))},
    "/api/v1/storage/pools": {"get": op("listPools", "Storage pools with capacity, free space, bytes allocated to volumes and whether the directory is there", "Datastore.Audit",
        ok("pools", {"type": "array", "items": ref("Pool")}), errors=("503",))},
    "/api/v1/storage/volumes": {"get": op("listVolumes", "Volumes of every pool (or of one: pool=NAME)", "Datastore.Audit",
        ok("volumes ordered by pool and name", {"type": "array", "items": ref("Volume")}), [{"name": "pool", "in": "query", "schema": {"type": "string"}}], errors=("503",))},
    "/api/v1/storage/pools/{pool}/volumes": {"post": op("createVolume", "Create an empty, sparse volume (qemu-img create, made under a temporary name and renamed when complete)", "Datastore.Allocate",
        ok("created", ref("Volume"), "201"), [POOLP], body={"type": "object", "additionalProperties": False, "required": ["name", "size"], "properties": {
            "name": NAME["schema"], "format": {"type": "string", "enum": ["qcow2", "raw"], "default": "qcow2"},
            "size": {"type": "integer", "minimum": 1048576, "description": "bytes, a multiple of 512, at most 64 TiB"}}}, errors=("400", "404", "409", "503", "507"))},
    "/api/v1/storage/pools/{pool}/volumes/{name}": {
      "get": op("getVolume", "Show a volume: record, bytes allocated, clones, the VM disks that use it, and why opening it would fail (problem), e.g. a header that disagrees with the record", "Datastore.Audit",
          ok("the volume", ref("VolumeInfo")), [POOLP, NAME], errors=("400", "404", "503")),
      "delete": op("deleteVolume", "Delete a volume; refused (409, naming them) while a VM definition uses it or it has clones", "Datastore.Allocate",
          {"204": {"description": "deleted"}}, [POOLP, NAME], errors=("400", "404", "409", "503")),
    },
    "/api/v1/storage/pools/{pool}/volumes/{name}/resize": {"post": op("resizeVolume", "Grow a volume; smaller than its size is refused (400), so is the base of clones (409)", "Datastore.Allocate",
        ok("the volume", ref("Volume")), [POOLP, NAME], body={"type": "object", "additionalProperties": False, "required": ["size"], "properties": {"size": {"type": "integer"}}}, errors=("400", "404", "409", "503", "507"))},
    "/api/v1/storage/pools/{pool}/volumes/{name}/clone": {"post": op("cloneVolume", "Make a thin qcow2 overlay on this volume in the same pool; the base is read-only while it has clones. Needs Datastore.Allocate on the base and on /storage/POOL", "Datastore.Allocate",
        ok("the clone", ref("Volume"), "201"), [POOLP, NAME], body=NAMEBODY, errors=("400", "403", "404", "409", "503", "507"))},
    "/api/v1/storage/pools/{pool}/volumes/{name}/content": {
      "put": dict(op("importVolume", "Create a volume from the request body (the image bytes). Refused, and nothing kept, when the SHA-256 differs, the pool is full or gone, or a qcow2 image is malformed or names a backing file, an external data file or unknown incompatible features. Checked on /storage/POOL", "Datastore.Allocate",
          ok("created", ref("Volume"), "201"), [POOLP, NAME,
              {"name": "sha256", "in": "query", "required": True, "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
              {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["raw", "qcow2"]}, "description": "absent: qcow2 if the file has the qcow2 magic, else raw"}],
          errors=("400", "404", "409", "413", "503", "507")), requestBody={"required": True, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}),
      "get": op("exportVolume", "The volume's file as it is (raw bytes or the qcow2 file); clones are refused (400). Audited", "Datastore.Allocate",
          {"200": {"description": "the file; X-Bulwark-Volume-Format names its format", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
          [POOLP, NAME], errors=("400", "404", "503")),
    },
    "/api/v1/vms/{name}/snapshots": {
      "post": op("createSnapshot", "Snapshot a VM's disks: each read-write volume disk's top becomes a read-only layer (its SHA-256 recorded) under a new empty overlay; a running VM is switched live (blockdev-snapshot of descriptor-passed overlays) and keeps running. Read-only disks are recorded as they are; a read-write host-path disk refuses the snapshot (409)", "VM.Snapshot",
          ok("the snapshot", ref("Snapshot"), "201"), [NAME], body=NAMEBODY, errors=("400", "404", "409", "503", "507")),
      "get": op("listSnapshots", "A VM's snapshots, oldest first", "VM.Audit", ok("snapshots", {"type": "array", "items": ref("Snapshot")}), [NAME], errors=("404", "503")),
    },
    "/api/v1/vms/{name}/snapshots/{snap}": {
      "get": op("getSnapshot", "One snapshot: the VM's definition at the time and each disk's frozen layers with digests", "VM.Audit", ok("the snapshot", ref("Snapshot")), [NAME, SNAPP], errors=("400", "404", "503")),
      "delete": op("deleteSnapshot", "Delete a snapshot: layers nothing depends on are removed; the newest snapshot's layers take the disks' later changes (VM stopped); a snapshot with later snapshots or restored VMs on its layers is refused (409, naming them)", "VM.Snapshot",
          {"204": {"description": "deleted"}}, [NAME, SNAPP], errors=("400", "404", "409", "503")),
    },
    "/api/v1/vms/{name}/snapshots/{snap}/revert": {"post": op("revertSnapshot", "Put a stopped VM's disks back to the snapshot (their later changes are discarded); the layers are verified first. Refused (409) while the VM runs or when a layer's digest differs (both digests named)", "VM.Snapshot",
        ok("the snapshot reverted to", ref("Snapshot")), [NAME, SNAPP], errors=("400", "404", "409", "503", "507"))},
    "/api/v1/vms/{name}/snapshots/{snap}/restore": {"post": op("restoreSnapshot", "Create a new VM from the snapshot: new overlays (volumes NEW-diskN) on its verified layers, the recorded definition under the new name with new MACs and addresses. Also needs VM.Create on /vms, Datastore.Allocate on /storage/POOL and what the definition names (disks, host paths, networks)", "VM.Snapshot",
        ok("the new VM", ref("VM"), "201"), [NAME, SNAPP], body=NAMEBODY, errors=("400", "403", "404", "409", "503", "507"))},
    "/api/v1/vms/{name}/snapshots/{snap}/verify": {"get": op("verifySnapshot", "Recompute the SHA-256 of every layer the snapshot recorded; ok is false and mismatches name each layer with both digests when a file changed", "VM.Snapshot",
        ok("the report", ref("SnapshotVerify")), [NAME, SNAPP], errors=("400", "404", "503"))},
    "/metrics": {"get": op("metrics", "Prometheus metrics", "Monitor.Read", {"200": {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}}, errors=())},
  },
  "components": {"schemas": {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}, "field": {"type": "string"}}},
    "Disk": {"type": "object", "additionalProperties": False, "description": "exactly one of volume and path", "properties": {
        "volume": {"type": "string", "description": "POOL/NAME of a storage volume; needs VM.Config.Disk on the VM and Datastore.Allocate on /storage/POOL/volumes/NAME"},
        "path": {"type": "string", "description": "host path of a raw image or block device"}, "read_only": {"type": "boolean"}}},
    "Volume": {"type": "object", "properties": {"pool": {"type": "string"}, "name": {"type": "string"}, "format": {"type": "string", "enum": ["raw", "qcow2"]},
        "size": {"type": "integer", "description": "virtual size in bytes"}, "base": {"type": "string", "description": "the volume (same pool) this clone overlays; the chain comes from this record, never from the image header"},
        "sha256": {"type": "string", "description": "digest at import"}, "created": {"type": "string", "format": "date-time"}}},
    "VolumeInfo": {"allOf": [ref("Volume"), {"type": "object", "properties": {"allocated": {"type": "integer"}, "clones": {"type": "array", "items": {"type": "string"}},
        "used_by": {"type": "array", "items": {"type": "object", "properties": {"vm": {"type": "string"}, "disk": {"type": "integer"}, "read_only": {"type": "boolean"}}}},
        "problem": {"type": "string"}}}]},
    "ImageManifest": {"type": "object", "properties": {"schema": {"type": "integer"}, "name": {"type": "string"}, "version": {"type": "string"},
        "kind": {"type": "string", "enum": ["initramfs", "disk"]}, "cmdline": {"type": "string", "description": "what the image's kernel needs on its command line"},
        "files": {"type": "array", "items": {"type": "object", "properties": {"role": {"type": "string", "enum": ["kernel", "initrd", "disk"]}, "name": {"type": "string"},
            "sha256": {"type": "string"}, "size": {"type": "integer"}, "format": {"type": "string"}, "virtual_size": {"type": "integer"}}}},
        "provenance": {"type": "object", "description": "builder, tools and versions, sources, archive InRelease digests, requested and installed packages with versions, source_date_epoch, built_at, cache_key, root_tree_sha256"}}},
    "Snapshot": {"type": "object", "properties": {"vm": {"type": "string"}, "name": {"type": "string"}, "created": {"type": "string", "format": "date-time"},
        "running": {"type": "boolean", "description": "taken while the guest ran: the disks are crash-consistent"}, "spec": ref("Spec"),
        "disks": {"type": "array", "items": {"type": "object", "properties": {"disk": {"type": "integer"}, "volume": {"type": "string"}, "read_only": {"type": "boolean"},
            "layers": {"type": "array", "description": "the frozen layer first, then its bases", "items": ref("LayerDigest")}}}}}},
    "LayerDigest": {"type": "object", "properties": {"volume": {"type": "string", "description": "POOL/NAME"}, "sha256": {"type": "string"}}},
    "SnapshotVerify": {"type": "object", "properties": {"snapshot": {"type": "string"}, "ok": {"type": "boolean"}, "layers": {"type": "array", "items": ref("LayerDigest")},
        "mismatches": {"type": "array", "items": {"type": "object", "properties": {"volume": {"type": "string"}, "recorded": {"type": "string"}, "actual": {"type": "string"}, "problem": {"type": "string"}}}}}},
    "ImageEntry": {"type": "object", "properties": {"name": {"type": "string"}, "manifest": ref("ImageManifest"), "error": {"type": "string"}}},
    "Pool": {"type": "object", "properties": {"name": {"type": "string"}, "path": {"type": "string"}, "capacity": {"type": "integer"}, "free": {"type": "integer"},
        "allocated": {"type": "integer"}, "volumes": {"type": "integer"}, "available": {"type": "boolean"}, "problem": {"type": "string"}}},
    "NIC": {"type": "object", "additionalProperties": False, "properties": {"mac": {"type": "string"}, "network": {"type": "string", "description": "switch network; the NIC becomes a filtered port"},
        "ip": {"type": "string", "description": "IPv4 address bound by anti-spoofing; assigned from the subnet if empty"},
        "groups": {"type": "array", "items": {"type": "string"}, "maxItems": 16, "description": "security groups, in evaluation order"},
        "socket": {"type": "string", "description": "refused (400, field nics[N].socket): NICs on host sockets bypassed the switch and its firewall; put the NIC on a network. Without network the NIC is unattached"}}},
    "Network": {"type": "object", "additionalProperties": False, "required": ["name", "subnet"], "properties": {
        "name": NAME["schema"], "subnet": {"type": "string", "description": "IPv4 CIDR /8../30"}, "gateway": {"type": "string"},
        "default_ingress": {"type": "string", "enum": ["same-group", "deny", "allow"], "default": "same-group"},
        "default_egress": {"type": "string", "enum": ["allow", "deny"], "default": "allow"},
        "storm_pps": {"type": "integer", "minimum": 1, "default": 100, "description": "broadcast/multicast frames per second per VM port"},
        "uplink": {"type": "object", "additionalProperties": False, "required": ["kind", "interface"], "properties": {"kind": {"type": "string", "enum": ["interface", "tap"]}, "interface": {"type": "string"}}}}},
    "Rule": {"type": "object", "additionalProperties": False, "required": ["direction", "action"], "properties": {
        "id": {"type": "string"}, "direction": {"type": "string", "enum": ["ingress", "egress"]}, "action": {"type": "string", "enum": ["allow", "drop", "reject"]},
        "protocol": {"type": "string", "enum": ["any", "tcp", "udp", "icmp"], "default": "any"},
        "port_min": {"type": "integer", "minimum": 0, "maximum": 65535}, "port_max": {"type": "integer", "minimum": 0, "maximum": 65535},
        "icmp_type": {"type": "integer", "minimum": -1, "maximum": 255},
        "remote_cidr": {"type": "string"}, "remote_ip_set": {"type": "string"}, "remote_group": {"type": "string"}, "description": {"type": "string"}}},
    "SecurityGroup": {"type": "object", "additionalProperties": False, "required": ["name"], "properties": {"name": NAME["schema"], "rules": {"type": "array", "items": ref("Rule")}}},
    "IPSet": {"type": "object", "additionalProperties": False, "required": ["name", "cidrs"], "properties": {"name": NAME["schema"], "cidrs": {"type": "array", "items": {"type": "string"}}}},
    "Port": {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}, "kind": {"type": "string", "enum": ["vm", "uplink"]}, "network": {"type": "string"},
        "vm": {"type": "string"}, "mac": {"type": "string"}, "ips": {"type": "array", "items": {"type": "string"}}, "groups": {"type": "array", "items": {"type": "string"}},
        "rx_frames": {"type": "integer"}, "rx_bytes": {"type": "integer"}, "tx_frames": {"type": "integer"}, "tx_bytes": {"type": "integer"}, "tx_dropped_full": {"type": "integer"},
        "drops": {"type": "object", "additionalProperties": {"type": "integer"}, "description": "drops by reason"}}},
    "Spec": {"type": "object", "additionalProperties": False, "required": ["name", "memory_mib", "kernel"], "properties": {
        "name": NAME["schema"], "vcpus": {"type": "integer", "minimum": 1, "maximum": 64, "default": 1},
        "memory_mib": {"type": "integer", "minimum": 32, "maximum": 1048576},
        "image": {"type": "string", "description": "registry image: kernel, initrd and command line from it (checked against its manifest at create and every start); a disk image also gives a thin root volume NAME-root (size: ?root_size=8G); kernel and initrd must then be empty"},
        "kernel": {"type": "string"}, "initrd": {"type": "string"}, "cmdline": {"type": "string", "maxLength": 2048},
        "disks": {"type": "array", "maxItems": 8, "items": ref("Disk")}, "nics": {"type": "array", "maxItems": 8, "items": ref("NIC")},
        "accel": {"type": "string", "enum": ["auto", "kvm", "tcg"], "default": "auto"}, "console": ref("ConsolePolicy"),
        "monitor_interval": {"type": "string", "description": "introspection scan interval (Go duration, 1s..24h); empty: on demand only"}}},
    "VMPatch": {"type": "object", "additionalProperties": False, "description": "absent or null: unchanged; \"\" clears initrd, cmdline, monitor_interval; disks and nics replace the whole list; name and console cannot change here", "properties": {
        "vcpus": {"type": "integer", "minimum": 1, "maximum": 64}, "memory_mib": {"type": "integer", "minimum": 32, "maximum": 1048576},
        "image": {"type": "string", "description": "re-point a stopped VM at another image (its kernel, initrd, command line; disks stay); \"\" detaches it"},
        "kernel": {"type": "string"}, "initrd": {"type": "string"}, "cmdline": {"type": "string", "maxLength": 2048},
        "accel": {"type": "string", "enum": ["auto", "kvm", "tcg"]}, "monitor_interval": {"type": "string"},
        "disks": {"type": "array", "maxItems": 8, "items": ref("Disk")}, "nics": {"type": "array", "maxItems": 8, "items": ref("NIC")},
        "nic_groups": {"type": "array", "description": "set the groups of existing NICs by index (not with nics); the only change a running VM takes", "items": {"type": "object", "additionalProperties": False, "required": ["nic", "groups"], "properties": {"nic": {"type": "integer", "minimum": 0}, "groups": {"type": "array", "maxItems": 16, "items": {"type": "string"}}}}}}},
    "VMUpdate": {"type": "object", "properties": {"vm": ref("VM"), "changes": {"type": "array", "items": {"type": "object", "properties": {"field": {"type": "string"}, "old": {"type": "string", "description": "JSON; empty: absent"}, "new": {"type": "string", "description": "JSON; empty: absent"}}}}}},
    "VMIView": {"type": "object", "properties": {"millis": {"type": "number"}, "items": {"type": "array", "items": {"type": "object"}}}},
    "ConsolePolicy": {"type": "object", "additionalProperties": False, "description": "zero fields take the daemon's defaults; setting one needs VM.Config", "properties": {
        "max_sessions": {"type": "integer", "minimum": 1, "maximum": 8, "default": 1}, "clipboard": {"type": "string", "enum": ["deny", "allow"], "default": "deny"},
        "record_input": {"type": "boolean", "default": False}, "idle_timeout": {"type": "string", "description": "Go duration, 1s..168h", "default": "15m"},
        "max_duration": {"type": "string", "description": "Go duration, 1s..168h", "default": "8h"},
        "input_max_keys": {"type": "integer", "default": 8}, "input_burst": {"type": "integer", "default": 40}, "input_rate": {"type": "number", "default": 25}}},
    "ConsoleParty": {"type": "object", "properties": {"user": {"type": "string"}, "client": {"type": "string", "enum": ["cli", "web"]}, "since": {"type": "string", "format": "date-time"}}},
    "ConsoleSessions": {"type": "object", "properties": {"vm": {"type": "string"}, "holders": {"type": "array", "items": ref("ConsoleParty")},
        "waiting": {"type": "array", "items": ref("ConsoleParty")}, "policy": {"type": "object"}}},
    "Recording": {"type": "object", "properties": {"id": {"type": "string"}, "file": {"type": "string"}, "size": {"type": "integer"}, "modified": {"type": "string", "format": "date-time"},
        "started": {"type": "string", "format": "date-time"}, "active": {"type": "boolean"},
        "info": {"type": "object", "properties": {"session": {"type": "string"}, "vm": {"type": "string"}, "user": {"type": "string"}, "source": {"type": "string"}, "input_logged": {"type": "boolean"}}}}},
    "Runtime": {"type": "object", "properties": {"id": {"type": "integer"}, "pid": {"type": "integer"}, "start_time": {"type": "integer"},
        "accel": {"type": "string"}, "accel_reason": {"type": "string"}, "run_dir": {"type": "string"}, "uid": {"type": "integer"}}},
    "VM": {"type": "object", "properties": {"spec": ref("Spec"), "state": {"type": "string", "enum": ["defined", "starting", "running", "paused", "stopping", "stopped", "crashed"]},
        "reason": {"type": "string"}, "runtime": ref("Runtime"), "created": {"type": "string", "format": "date-time"}, "updated": {"type": "string", "format": "date-time"}}},
    "AuditRecord": {"type": "object", "properties": {k: {"type": "integer"} if k == "seq" else {"type": "string"} for k in
        ["seq", "time", "user", "action", "object", "result", "source", "detail", "prev", "hash"]}},
    "Role": {"type": "object", "properties": {"Name": {"type": "string"}, "BuiltIn": {"type": "boolean"}, "Privs": {"type": "array", "items": {"type": "string"}}}},
    "User": {"type": "object", "properties": {"name": {"type": "string"}, "disabled": {"type": "boolean"}, "groups": {"type": "array", "items": {"type": "string"}}}},
    "Token": {"type": "object", "properties": {"id": {"type": "string"}, "user": {"type": "string"}, "kind": {"type": "string", "enum": ["api", "session"]}, "expires": {"type": "string", "format": "date-time"}, "created": {"type": "string", "format": "date-time"}, "description": {"type": "string"}}},
    "Permission": {"type": "object", "additionalProperties": False, "required": ["role", "path"], "properties": {"id": {"type": "string"}, "user": {"type": "string"}, "group": {"type": "string"},
        "role": {"type": "string"}, "path": {"type": "string"}, "propagate": {"type": "boolean"}}},
    "Host": {"type": "object", "properties": {"version": {"type": "string"}, "commit": {"type": "string"}, "go_version": {"type": "string"}, "backend": {"type": "string"},
        "accel": {"type": "object", "properties": {"name": {"type": "string"}, "reason": {"type": "string"}}}, "hostname": {"type": "string"}, "state_dir": {"type": "string"}}},
  }},
}
spec["paths"]["/api/v1/vms"]["post"]["description"] = (
    "Kernel, initrd and disk paths outside the daemon's image directories (--image-dir, symlinks resolved), and disks that are not regular files, "
    "also need VM.HostPaths on / (403 otherwise); only Administrator holds it. So does a disk in an image directory attached read-write (image files are shared). "
    "A NIC on a network needs Network.Attach on /networks/NET and on /security-groups/G for each of its groups.")
# List routes return only the objects on which the caller holds the privilege.
LISTED = {"listVMs": "VM.Audit on /vms/NAME", "listNetworks": "Network.Audit on /networks/NAME",
          "listSecurityGroups": "Firewall.Read on /security-groups/NAME", "listIPSets": "Firewall.Read on /ip-sets/NAME",
          "listPorts": "Firewall.Read on /networks/NETWORK", "ruleHits": "Firewall.Read on /security-groups/GROUP",
          "firewallLog": "Firewall.Read on /networks/NETWORK (all lines with it on /networks)",
          "listEvents": "Monitor.Read on /vms/VM (all lines with it on /)", "listUsers": "User.Manage on /users/NAME",
          "listRoles": "Role.Manage on /roles/NAME (all with it on /roles)", "listTokens": "their own, and User.Manage on /users/OWNER",
          "listPermissions": "Permission.Manage on the entry's path",
          "listPools": "Datastore.Audit on /storage/POOL", "listImages": "Datastore.Audit on /images/NAME", "listVolumes": "Datastore.Audit on /storage/POOL/volumes/NAME"}
for path, ops in spec["paths"].items():
    for method, o in ops.items():
        if o["operationId"] in LISTED:
            o["description"] = ("Filtered per object: only what the caller may see (" + LISTED[o["operationId"]] +
                "); a caller who may see nothing gets an empty list, not 403.")
out = os.path.join(os.path.dirname(__file__), "..", "internal", "api", "openapi.json")
with open(out, "w") as f:
    json.dump(spec, f, indent=2); f.write("\n")
