// Package api is Bulwark's REST API under /api/v1. Routes are declared as
// data in one table (routes below); each names the privilege and the object
// path it needs, so access control can be enforced and audited in one place.
// openapi.json describes the same routes and a test keeps the two in step.
package api

import (
	"net/http"

	"github.com/bulwark-project/bulwark/internal/storage"
)

// Route is one API endpoint.
type Route struct {
	Method string
	Path   string // Go ServeMux pattern syntax, identical to the OpenAPI path
	OpID   string // OpenAPI operationId
	Public bool   // reachable without credentials (health, the API description, login)
	// List routes return only the objects on which the caller holds Priv
	// (listfilter.go); Object is then the collection, for the audit log.
	List bool
	// Self routes only need an authenticated caller: they describe the
	// caller to themselves (whoami).
	Self    bool
	Priv    string // privilege required on Object; empty only when Public
	Object  func(r *http.Request) string
	Handler func(s *Server, w http.ResponseWriter, r *http.Request) error
	// MaxBody, if set, replaces MaxBodyBytes for this route (uploads).
	MaxBody int64
}

func (rt Route) bodyLimit() int64 {
	if rt.MaxBody > 0 {
		return rt.MaxBody
	}
	return MaxBodyBytes
}

func root(*http.Request) string    { return "/" }
func vmsRoot(*http.Request) string { return "/vms" }
func vmObj(r *http.Request) string { return "/vms/" + r.PathValue("name") }

// Privileges used by the routes in this file; internal/auth owns the full
// catalogue once it exists.
const (
	PrivVMAudit    = "VM.Audit"
	PrivVMCreate   = "VM.Create"
	PrivVMDelete   = "VM.Delete"
	PrivVMPowerOn  = "VM.PowerOn"
	PrivVMPowerOff = "VM.PowerOff"
	PrivVMConsole  = "VM.Console"
	PrivVMConfig   = "VM.Config"
	PrivVMHostPath = "VM.HostPaths"

	PrivVMConsoleTakeover = "VM.Console.Takeover"
	PrivMonitorRespond    = "Monitor.Respond"
	PrivMonitor           = "Monitor.Read"
	PrivNetAudit          = "Network.Audit"
	PrivNetConfig         = "Network.Config"
	PrivNetAttach         = "Network.Attach"
	PrivFWRead            = "Firewall.Read"
	PrivFWConfig          = "Firewall.Config"
	PrivAuditRead         = "Audit.Read"
	PrivUserManage        = "User.Manage"
	PrivRoleManage        = "Role.Manage"
	PrivPermManage        = "Permission.Manage"
	PrivDatastoreAllocate = "Datastore.Allocate"
	PrivDatastoreAudit    = "Datastore.Audit"
	PrivVMConfigDisk      = "VM.Config.Disk"
	PrivVMSnapshot        = "VM.Snapshot"
	PrivAttestRead        = "Attestation.Read"
	PrivAttestConfig      = "Attestation.Config"
	PrivPoolAudit         = "Pool.Audit"
	PrivPoolConfig        = "Pool.Config"
	PrivPoolAllocate      = "Pool.Allocate"
	PrivIPSRead           = "IPS.Read"
	PrivIPSConfig         = "IPS.Config"
	PrivNetMirror         = "Network.Mirror"
)

func routes() []Route {
	return []Route{
		{Method: "GET", Path: "/api/v1/health", OpID: "health", Public: true, Handler: (*Server).health},
		{Method: "GET", Path: "/api/v1/openapi.json", OpID: "openapi", Public: true, Handler: (*Server).openapi},
		{Method: "POST", Path: "/api/v1/login", OpID: "login", Public: true, Handler: needAccess((*Server).login)},
		{Method: "GET", Path: "/api/v1/whoami", OpID: "whoami", Self: true, Object: root, Handler: (*Server).whoami},
		{Method: "GET", Path: "/api/v1/version", OpID: "version", Priv: PrivMonitor, Object: root, Handler: (*Server).version},
		{Method: "GET", Path: "/api/v1/host", OpID: "host", Priv: PrivMonitor, Object: root, Handler: (*Server).host},
		{Method: "GET", Path: "/api/v1/vms", OpID: "listVMs", List: true, Priv: PrivVMAudit, Object: vmsRoot, Handler: (*Server).listVMs},
		{Method: "POST", Path: "/api/v1/vms", OpID: "createVM", Priv: PrivVMCreate, Object: vmsRoot, Handler: (*Server).createVM},
		{Method: "GET", Path: "/api/v1/vms/{name}", OpID: "getVM", Priv: PrivVMAudit, Object: vmObj, Handler: (*Server).getVM},
		{Method: "PATCH", Path: "/api/v1/vms/{name}", OpID: "updateVM", Priv: PrivVMConfig, Object: vmObj, Handler: (*Server).updateVM},
		{Method: "DELETE", Path: "/api/v1/vms/{name}", OpID: "deleteVM", Priv: PrivVMDelete, Object: vmObj, Handler: (*Server).deleteVM},
		{Method: "POST", Path: "/api/v1/vms/{name}/start", OpID: "startVM", Priv: PrivVMPowerOn, Object: vmObj, Handler: (*Server).startVM},
		{Method: "POST", Path: "/api/v1/vms/{name}/stop", OpID: "stopVM", Priv: PrivVMPowerOff, Object: vmObj, Handler: (*Server).stopVM},
		{Method: "POST", Path: "/api/v1/vms/{name}/pause", OpID: "pauseVM", Priv: PrivVMPowerOff, Object: vmObj, Handler: (*Server).pauseVM},
		{Method: "POST", Path: "/api/v1/vms/{name}/resume", OpID: "resumeVM", Priv: PrivVMPowerOn, Object: vmObj, Handler: (*Server).resumeVM},
		{Method: "POST", Path: "/api/v1/vms/{name}/snapshots", OpID: "createSnapshot", Priv: PrivVMSnapshot, Object: vmObj, Handler: needStorage((*Server).createSnapshot)},
		{Method: "GET", Path: "/api/v1/vms/{name}/snapshots", OpID: "listSnapshots", Priv: PrivVMAudit, Object: vmObj, Handler: needStorage((*Server).listSnapshots)},
		{Method: "GET", Path: "/api/v1/vms/{name}/snapshots/{snap}", OpID: "getSnapshot", Priv: PrivVMAudit, Object: vmObj, Handler: needStorage((*Server).getSnapshot)},
		{Method: "DELETE", Path: "/api/v1/vms/{name}/snapshots/{snap}", OpID: "deleteSnapshot", Priv: PrivVMSnapshot, Object: vmObj, Handler: needStorage((*Server).deleteSnapshot)},
		{Method: "POST", Path: "/api/v1/vms/{name}/snapshots/{snap}/revert", OpID: "revertSnapshot", Priv: PrivVMSnapshot, Object: vmObj, Handler: needStorage((*Server).revertSnapshot)},
		{Method: "POST", Path: "/api/v1/vms/{name}/snapshots/{snap}/restore", OpID: "restoreSnapshot", Priv: PrivVMSnapshot, Object: vmObj, Handler: needStorage((*Server).restoreSnapshot)},
		{Method: "GET", Path: "/api/v1/vms/{name}/snapshots/{snap}/verify", OpID: "verifySnapshot", Priv: PrivVMSnapshot, Object: vmObj, Handler: needStorage((*Server).verifySnapshot)},
		{Method: "GET", Path: "/api/v1/vms/{name}/console/log", OpID: "vmConsoleLog", Priv: PrivVMConsole, Object: vmObj, Handler: (*Server).consoleLog},
		{Method: "GET", Path: "/api/v1/vms/{name}/console", OpID: "vmConsole", Priv: PrivVMConsole, Object: vmObj, Handler: needConsole((*Server).consoleWS)},
		{Method: "GET", Path: "/api/v1/vms/{name}/console/sessions", OpID: "vmConsoleSessions", Priv: PrivVMAudit, Object: vmObj, Handler: needConsole((*Server).consoleSessions)},
		{Method: "PUT", Path: "/api/v1/vms/{name}/console/policy", OpID: "setConsolePolicy", Priv: PrivVMConfig, Object: vmObj, Handler: (*Server).setConsolePolicy},
		{Method: "GET", Path: "/api/v1/console/recordings", OpID: "listRecordings", Priv: PrivAuditRead, Object: auditObj, Handler: needConsole((*Server).listRecordings)},
		{Method: "GET", Path: "/api/v1/console/recordings/{id}", OpID: "getRecording", Priv: PrivAuditRead, Object: auditObj, Handler: needConsole((*Server).getRecording)},
		{Method: "GET", Path: "/api/v1/vms/{name}/vmi/ps", OpID: "vmiProcesses", Priv: PrivMonitor, Object: vmObj, Handler: needVMI(vmiView("ps"))},
		{Method: "GET", Path: "/api/v1/vms/{name}/vmi/pids", OpID: "vmiPIDTable", Priv: PrivMonitor, Object: vmObj, Handler: needVMI(vmiView("pids"))},
		{Method: "GET", Path: "/api/v1/vms/{name}/vmi/modules", OpID: "vmiModules", Priv: PrivMonitor, Object: vmObj, Handler: needVMI(vmiView("modules"))},
		{Method: "GET", Path: "/api/v1/vms/{name}/vmi/sysfs-modules", OpID: "vmiSysfsModules", Priv: PrivMonitor, Object: vmObj, Handler: needVMI(vmiView("sysfs-modules"))},
		{Method: "GET", Path: "/api/v1/vms/{name}/vmi/syscalls", OpID: "vmiSyscalls", Priv: PrivMonitor, Object: vmObj, Handler: needVMI(vmiView("syscalls"))},
		{Method: "GET", Path: "/api/v1/vms/{name}/vmi/idt", OpID: "vmiIDT", Priv: PrivMonitor, Object: vmObj, Handler: needVMI(vmiView("idt"))},
		{Method: "GET", Path: "/api/v1/vms/{name}/vmi/bpf", OpID: "vmiBPF", Priv: PrivMonitor, Object: vmObj, Handler: needVMI(vmiView("bpf"))},
		{Method: "GET", Path: "/api/v1/vms/{name}/vmi/hooks", OpID: "vmiHooks", Priv: PrivMonitor, Object: vmObj, Handler: needVMI(vmiView("hooks"))},
		{Method: "GET", Path: "/api/v1/vms/{name}/vmi/info", OpID: "vmiInfo", Priv: PrivMonitor, Object: vmObj, Handler: needVMI(vmiView("info"))},
		{Method: "POST", Path: "/api/v1/vms/{name}/vmi/check", OpID: "vmiCheck", Priv: PrivMonitor, Object: vmObj, Handler: needVMI((*Server).vmiCheck)},
		{Method: "GET", Path: "/api/v1/vms/{name}/vmi/dump", OpID: "vmiDump", Priv: PrivMonitorRespond, Object: vmObj, Handler: (*Server).vmiDump},
		{Method: "GET", Path: "/api/v1/events", OpID: "listEvents", List: true, Priv: PrivMonitor, Object: root, Handler: (*Server).listEvents},
		{Method: "GET", Path: "/api/v1/monitor/response-policy", OpID: "getResponsePolicy", Priv: PrivMonitor, Object: root, Handler: needResponder(getResponsePolicy)},
		{Method: "PUT", Path: "/api/v1/monitor/response-policy", OpID: "setResponsePolicy", Priv: PrivMonitorRespond, Object: root, Handler: needResponder(setResponsePolicy)},
		{Method: "GET", Path: "/api/v1/monitor/quarantine", OpID: "listQuarantine", Priv: PrivMonitor, Object: root, Handler: needResponder(listQuarantine)},
		{Method: "POST", Path: "/api/v1/vms/{name}/monitor/release", OpID: "releaseQuarantine", Priv: PrivMonitorRespond, Object: vmObj, Handler: needResponder(releaseQuarantine)},
		{Method: "GET", Path: "/api/v1/networks", OpID: "listNetworks", List: true, Priv: PrivNetAudit, Object: netRoot, Handler: needNet((*Server).listNetworks)},
		{Method: "POST", Path: "/api/v1/networks", OpID: "createNetwork", Priv: PrivNetConfig, Object: netRoot, Handler: needNet((*Server).createNetwork)},
		{Method: "GET", Path: "/api/v1/networks/{name}", OpID: "getNetwork", Priv: PrivNetAudit, Object: netObj, Handler: needNet((*Server).getNetwork)},
		{Method: "DELETE", Path: "/api/v1/networks/{name}", OpID: "deleteNetwork", Priv: PrivNetConfig, Object: netObj, Handler: needNet((*Server).deleteNetwork)},
		{Method: "PATCH", Path: "/api/v1/networks/{name}", OpID: "patchNetwork", Priv: PrivNetConfig, Object: netObj, Handler: needNet((*Server).patchNetwork)},
		{Method: "GET", Path: "/api/v1/service-chains", OpID: "listServiceChains", Priv: PrivNetAudit, Object: chainsRoot, Handler: needNet((*Server).listChains)},
		{Method: "POST", Path: "/api/v1/service-chains", OpID: "createServiceChain", Priv: PrivNetMirror, Object: chainsRoot, Handler: needNet((*Server).createChain)},
		{Method: "DELETE", Path: "/api/v1/service-chains/{name}", OpID: "deleteServiceChain", Priv: PrivNetMirror, Object: chainsRoot, Handler: needNet((*Server).deleteChain)},
		{Method: "GET", Path: "/api/v1/mirrors", OpID: "listMirrors", Priv: PrivNetAudit, Object: mirrorsObj, Handler: needMirror((*Server).listMirrors)},
		{Method: "POST", Path: "/api/v1/mirrors", OpID: "createMirror", Priv: PrivNetMirror, Object: mirrorsObj, Handler: needMirror((*Server).createMirror)},
		{Method: "DELETE", Path: "/api/v1/mirrors/{name}", OpID: "deleteMirror", Priv: PrivNetMirror, Object: mirrorsObj, Handler: needMirror((*Server).deleteMirror)},
		{Method: "GET", Path: "/api/v1/ips", OpID: "ipsStatus", Priv: PrivIPSRead, Object: ipsObj, Handler: needIPS((*Server).ipsStatus)},
		{Method: "GET", Path: "/api/v1/ips/rules", OpID: "ipsRules", Priv: PrivIPSRead, Object: ipsObj, Handler: needIPS((*Server).ipsRules)},
		{Method: "PUT", Path: "/api/v1/ips/rules/{name}", OpID: "putRuleFile", Priv: PrivIPSConfig, Object: ipsObj, Handler: needIPS((*Server).putRuleFile), MaxBody: MaxRuleFileBody},
		{Method: "DELETE", Path: "/api/v1/ips/rules/{name}", OpID: "deleteRuleFile", Priv: PrivIPSConfig, Object: ipsObj, Handler: needIPS((*Server).deleteRuleFile)},
		{Method: "PUT", Path: "/api/v1/ips/mode", OpID: "setIPSMode", Priv: PrivIPSConfig, Object: ipsObj, Handler: needIPS((*Server).setIPSMode)},
		{Method: "GET", Path: "/api/v1/ips/alerts", OpID: "ipsAlerts", Priv: PrivIPSRead, Object: ipsObj, Handler: needIPS((*Server).ipsAlerts)},
		{Method: "GET", Path: "/api/v1/security-groups", OpID: "listSecurityGroups", List: true, Priv: PrivFWRead, Object: sgRoot, Handler: needNet((*Server).listGroups)},
		{Method: "POST", Path: "/api/v1/security-groups", OpID: "createSecurityGroup", Priv: PrivFWConfig, Object: sgRoot, Handler: needNet((*Server).createGroup)},
		{Method: "GET", Path: "/api/v1/security-groups/{name}", OpID: "getSecurityGroup", Priv: PrivFWRead, Object: sgObj, Handler: needNet((*Server).getGroup)},
		{Method: "DELETE", Path: "/api/v1/security-groups/{name}", OpID: "deleteSecurityGroup", Priv: PrivFWConfig, Object: sgObj, Handler: needNet((*Server).deleteGroup)},
		{Method: "POST", Path: "/api/v1/security-groups/{name}/rules", OpID: "addRule", Priv: PrivFWConfig, Object: sgObj, Handler: needNet((*Server).addRule)},
		{Method: "DELETE", Path: "/api/v1/security-groups/{name}/rules/{id}", OpID: "removeRule", Priv: PrivFWConfig, Object: sgObj, Handler: needNet((*Server).removeRule)},
		{Method: "GET", Path: "/api/v1/ip-sets", OpID: "listIPSets", List: true, Priv: PrivFWRead, Object: ipsetRoot, Handler: needNet((*Server).listIPSets)},
		{Method: "POST", Path: "/api/v1/ip-sets", OpID: "createIPSet", Priv: PrivFWConfig, Object: ipsetRoot, Handler: needNet((*Server).createIPSet)},
		{Method: "DELETE", Path: "/api/v1/ip-sets/{name}", OpID: "deleteIPSet", Priv: PrivFWConfig, Object: ipsetObj, Handler: needNet((*Server).deleteIPSet)},
		{Method: "GET", Path: "/api/v1/ports", OpID: "listPorts", List: true, Priv: PrivFWRead, Object: netRoot, Handler: needNet((*Server).listPorts)},
		{Method: "GET", Path: "/api/v1/firewall/rule-hits", OpID: "ruleHits", List: true, Priv: PrivFWRead, Object: sgRoot, Handler: needNet((*Server).ruleHits)},
		{Method: "GET", Path: "/api/v1/firewall/log", OpID: "firewallLog", List: true, Priv: PrivFWRead, Object: sgRoot, Handler: needNet((*Server).firewallLog)},
		{Method: "GET", Path: "/api/v1/attestation/eventlog", OpID: "attestEventLog", Priv: PrivAttestRead, Object: attestObj, Handler: (*Server).attestEventLog},
		{Method: "GET", Path: "/api/v1/attestation/pcrs", OpID: "attestPCRs", Priv: PrivAttestRead, Object: attestObj, Handler: (*Server).attestPCRs},
		{Method: "GET", Path: "/api/v1/attestation/status", OpID: "attestStatus", Priv: PrivAttestRead, Object: attestObj, Handler: (*Server).attestStatus},
		{Method: "GET", Path: "/api/v1/attestation/keys", OpID: "attestKeys", Priv: PrivAttestRead, Object: attestObj, Handler: (*Server).attestKeys},
		{Method: "POST", Path: "/api/v1/attestation/activate", OpID: "attestActivate", Priv: PrivAttestConfig, Object: attestObj, Handler: (*Server).attestActivate},
		{Method: "GET", Path: "/api/v1/attestation/quote", OpID: "attestQuote", Priv: PrivAttestRead, Object: attestObj, Handler: (*Server).attestQuote},
		{Method: "PUT", Path: "/api/v1/attestation/verdict", OpID: "attestSetVerdict", Priv: PrivAttestConfig, Object: attestObj, Handler: (*Server).attestSetVerdict},
		{Method: "GET", Path: "/api/v1/pools", OpID: "listResourcePools", List: true, Priv: PrivPoolAudit, Object: poolsRoot, Handler: needPools((*Server).listRPools)},
		{Method: "POST", Path: "/api/v1/pools", OpID: "createResourcePool", List: true, Priv: PrivPoolConfig, Object: poolsRoot, Handler: needPools((*Server).createRPool)},
		{Method: "GET", Path: "/api/v1/pools/{name}", OpID: "getResourcePool", Priv: PrivPoolAudit, Object: rpoolObj, Handler: needPools((*Server).getRPool)},
		{Method: "PUT", Path: "/api/v1/pools/{name}", OpID: "updateResourcePool", Priv: PrivPoolConfig, Object: rpoolObj, Handler: needPools((*Server).updateRPool)},
		{Method: "DELETE", Path: "/api/v1/pools/{name}", OpID: "deleteResourcePool", Priv: PrivPoolConfig, Object: rpoolObj, Handler: needPools((*Server).deleteRPool)},
		{Method: "GET", Path: "/api/v1/audit", OpID: "listAudit", Priv: PrivAuditRead, Object: auditObj, Handler: (*Server).listAudit},
		{Method: "GET", Path: "/api/v1/audit/export", OpID: "exportAudit", Priv: PrivAuditRead, Object: auditObj, Handler: (*Server).exportAudit},
		{Method: "GET", Path: "/api/v1/audit/verify", OpID: "verifyAudit", Priv: PrivAuditRead, Object: auditObj, Handler: (*Server).verifyAudit},
		{Method: "GET", Path: "/api/v1/privileges", OpID: "listPrivileges", Priv: PrivRoleManage, Object: rolesRoot, Handler: (*Server).listPrivileges},
		{Method: "GET", Path: "/api/v1/roles", OpID: "listRoles", List: true, Priv: PrivRoleManage, Object: rolesRoot, Handler: needAccess((*Server).listRoles)},
		{Method: "POST", Path: "/api/v1/roles", OpID: "createRole", Priv: PrivRoleManage, Object: rolesRoot, Handler: needAccess((*Server).createRole)},
		{Method: "DELETE", Path: "/api/v1/roles/{name}", OpID: "deleteRole", Priv: PrivRoleManage, Object: roleObj, Handler: needAccess((*Server).deleteRole)},
		{Method: "POST", Path: "/api/v1/roles/{name}/privileges", OpID: "addRolePrivilege", Priv: PrivRoleManage, Object: roleObj, Handler: needAccess((*Server).addRolePriv)},
		{Method: "DELETE", Path: "/api/v1/roles/{name}/privileges/{priv}", OpID: "removeRolePrivilege", Priv: PrivRoleManage, Object: roleObj, Handler: needAccess((*Server).removeRolePriv)},
		{Method: "GET", Path: "/api/v1/users", OpID: "listUsers", List: true, Priv: PrivUserManage, Object: usersRoot, Handler: needAccess((*Server).listUsers)},
		{Method: "POST", Path: "/api/v1/users", OpID: "createUser", Priv: PrivUserManage, Object: usersRoot, Handler: needAccess((*Server).createUser)},
		{Method: "PATCH", Path: "/api/v1/users/{name}", OpID: "updateUser", Priv: PrivUserManage, Object: userObj, Handler: needAccess((*Server).updateUser)},
		{Method: "DELETE", Path: "/api/v1/users/{name}", OpID: "deleteUser", Priv: PrivUserManage, Object: userObj, Handler: needAccess((*Server).deleteUser)},
		{Method: "POST", Path: "/api/v1/users/{name}/password", OpID: "setPassword", Priv: PrivUserManage, Object: userObj, Handler: needAccess((*Server).setPassword)},
		{Method: "GET", Path: "/api/v1/tokens", OpID: "listTokens", List: true, Priv: PrivUserManage, Object: usersRoot, Handler: needAccess((*Server).listTokens)},
		{Method: "POST", Path: "/api/v1/tokens", OpID: "createToken", Priv: PrivUserManage, Object: usersRoot, Handler: needAccess((*Server).createToken)},
		{Method: "DELETE", Path: "/api/v1/tokens/{id}", OpID: "revokeToken", Priv: PrivUserManage, Object: usersRoot, Handler: needAccess((*Server).revokeToken)},
		{Method: "GET", Path: "/api/v1/permissions", OpID: "listPermissions", List: true, Priv: PrivPermManage, Object: root, Handler: needAccess((*Server).listPerms)},
		{Method: "POST", Path: "/api/v1/permissions", OpID: "grantPermission", Priv: PrivPermManage, Object: grantObj, Handler: needAccess((*Server).grantPerm)},
		{Method: "DELETE", Path: "/api/v1/permissions/{id}", OpID: "revokePermission", Priv: PrivPermManage, Object: revokeObj, Handler: needAccess((*Server).revokePerm)},
		{Method: "GET", Path: "/api/v1/images", OpID: "listImages", List: true, Priv: PrivDatastoreAudit, Object: imagesRoot, Handler: (*Server).listImages},
		{Method: "GET", Path: "/api/v1/images/{name}", OpID: "getImage", Priv: PrivDatastoreAudit, Object: imageObj, Handler: (*Server).getImage},
		{Method: "GET", Path: "/api/v1/storage/pools", OpID: "listPools", List: true, Priv: PrivDatastoreAudit, Object: storageRoot, Handler: needStorage((*Server).listPools)},
		{Method: "GET", Path: "/api/v1/storage/volumes", OpID: "listVolumes", List: true, Priv: PrivDatastoreAudit, Object: storageRoot, Handler: needStorage((*Server).listVolumes)},
		{Method: "POST", Path: "/api/v1/storage/pools/{pool}/volumes", OpID: "createVolume", Priv: PrivDatastoreAllocate, Object: poolObj, Handler: needStorage((*Server).createVolume)},
		{Method: "PUT", Path: "/api/v1/storage/pools/{pool}/volumes/{name}/content", OpID: "importVolume", Priv: PrivDatastoreAllocate, Object: poolObj, Handler: needStorage((*Server).importVolume), MaxBody: storage.MaxImportBytes + 1},
		{Method: "GET", Path: "/api/v1/storage/pools/{pool}/volumes/{name}/content", OpID: "exportVolume", Priv: PrivDatastoreAllocate, Object: volumeObj, Handler: needStorage((*Server).exportVolume)},
		{Method: "GET", Path: "/api/v1/storage/pools/{pool}/volumes/{name}", OpID: "getVolume", Priv: PrivDatastoreAudit, Object: volumeObj, Handler: needStorage((*Server).getVolume)},
		{Method: "POST", Path: "/api/v1/storage/pools/{pool}/volumes/{name}/resize", OpID: "resizeVolume", Priv: PrivDatastoreAllocate, Object: volumeObj, Handler: needStorage((*Server).resizeVolume)},
		{Method: "POST", Path: "/api/v1/storage/pools/{pool}/volumes/{name}/clone", OpID: "cloneVolume", Priv: PrivDatastoreAllocate, Object: volumeObj, Handler: needStorage((*Server).cloneVolume)},
		{Method: "DELETE", Path: "/api/v1/storage/pools/{pool}/volumes/{name}", OpID: "deleteVolume", Priv: PrivDatastoreAllocate, Object: volumeObj, Handler: needStorage((*Server).deleteVolume)},
		{Method: "GET", Path: "/metrics", OpID: "metrics", Priv: PrivMonitor, Object: root, Handler: (*Server).metrics},
	}
}
