import RescueCore

/// --json: one object for --check and --status, for fleets driven by ssh
/// loops or Ansible. Field names are stable (README "### ntpleap").
enum JSONValue {
    case string(String), int(Int), bool(Bool), null
    case array([JSONValue]), object([(String, JSONValue)])

    var text: String {
        switch self {
        case .string(let s): return jsonString(s)
        case .int(let n): return String(n)
        case .bool(let b): return b ? "true" : "false"
        case .null: return "null"
        case .array(let items): return "[" + items.map(\.text).joined(separator: ",") + "]"
        case .object(let fields): return "{" + fields.map { jsonString($0.0) + ":" + $0.1.text }.joined(separator: ",") + "}"
        }
    }
}

extension KernelVerdict {
    var json: JSONValue { .object([("verdict", .string(word)), ("reason", .string(reason))]) }
}

extension LeapReport {
    /// The whole report as one JSON object (one line).
    public func json() -> String {
        var fields: [(String, JSONValue)] = []
        fields.append(("files", .array(files.map { f in
            .object([
                ("path", .string(f.path)),
                ("config", .string(f.dialect == .chrony ? "chrony.conf" : "ntp.conf")),
                ("daemon", f.family.map { .string($0.rawValue) } ?? .null),
                ("origin", .string(f.origin.kind)),
                ("why", .string(f.origin.description)),
                ("verdict", .string(f.verdict.rawValue)),
                ("detail", .string(f.detail)),
                ("changes", .array(f.changes.map { .string($0) })),
            ])
        })))
        if let k = kernel {
            var kf: [(String, JSONValue)] = [("release", .string(k.release)), ("whose", .string("running kernel"))]
            kf.append(("leap_second_defect", k.verdict.json))
            if let s = k.leapState {
                kf.append(("leap_armed", .string(s.insertArmed ? "insert" : (s.deleteArmed ? "delete" : "none"))))
                kf.append(("adjtimex_state", .int(Int(s.timeState))))
                kf.append(("adjtimex_status", .int(Int(s.status))))
            } else {
                kf.append(("leap_armed", .null))
                kf.append(("leap_state_error", .string(k.leapStateError ?? "")))
            }
            if !k.imageKernels.isEmpty {
                kf.append(("installed", .array(k.imageKernels.map { name, v in
                    .object([("release", .string(name)), ("leap_second_defect", v.json)])
                })))
            }
            fields.append(("kernel", .object(kf)))
        }
        if let d = daemon {
            var df: [(String, JSONValue)] = [("address", .string(d.address)), ("leap", .string(d.leapBits)),
                                             ("leap_meaning", .string(d.leapMeaning))]
            df.append(("kernel_discipline", d.kernelDisciplineInUse.map { .bool($0) } ?? .null))
            df.append(("variables", .object(d.variables.map { ($0.0, .string($0.1)) })))
            fields.append(("daemon", .object(df)))
        } else if let e = daemonError {
            fields.append(("daemon", .object([("error", .string(e))])))
        }
        if !processes.isEmpty { fields.append(("processes", .array(processes.map { .string($0) }))) }
        if !restartCommands.isEmpty {
            fields.append(("restart", .array(restartCommands.map { .string($0.joined(separator: " ")) })))
        }
        if let error { fields.append(("error", .string(error.description))) }
        fields.append(("exit", .int(Int(exitCode))))
        return JSONValue.object(fields).text
    }
}
