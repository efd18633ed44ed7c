/// A unified diff (GNU `diff -u` format, 3 lines of context) of the edits
/// that turn `text` into `applied.result`. Lines keep their own terminators
/// (a CRLF line shows its CR); a line without one is followed by
/// `\ No newline at end of file`, so `patch` reproduces the result exactly.
public func unifiedDiff(oldName: String, newName: String, text: ConfText, applied: AppliedEdits,
                        context: Int = 3) -> [UInt8] {
    let ops = applied.ops
    var changed: [Int] = []
    for (k, op) in ops.enumerated() {
        if case .keep = op { continue }
        changed.append(k)
    }
    guard !changed.isEmpty else { return [] }
    var out: [UInt8] = Array("--- \(oldName)\n+++ \(newName)\n".utf8)

    // Old and new line numbers before each op.
    var oldBefore = [Int](repeating: 0, count: ops.count + 1)
    var newBefore = [Int](repeating: 0, count: ops.count + 1)
    for (k, op) in ops.enumerated() {
        switch op {
        case .keep: oldBefore[k + 1] = oldBefore[k] + 1; newBefore[k + 1] = newBefore[k] + 1
        case .delete: oldBefore[k + 1] = oldBefore[k] + 1; newBefore[k + 1] = newBefore[k]
        case .insert: oldBefore[k + 1] = oldBefore[k]; newBefore[k + 1] = newBefore[k] + 1
        }
    }
    // Hunks: runs of changes whose gaps of kept lines are at most 2*context.
    var hunks: [(Int, Int)] = []
    var first = changed[0], last = changed[0]
    for k in changed.dropFirst() {
        if k - last - 1 > 2 * context {
            hunks.append((first, last)); first = k
        }
        last = k
    }
    hunks.append((first, last))

    func range(_ start: Int, _ count: Int) -> String {
        if count == 1 { return "\(start + 1)" }
        return count == 0 ? "\(start),0" : "\(start + 1),\(count)"
    }
    func emit(_ tag: UInt8, _ line: ArraySlice<UInt8>) {
        out.append(tag)
        out += line
        if line.last != 10 { out += Array("\n\\ No newline at end of file\n".utf8) }
    }
    func oldLine(_ i: Int) -> ArraySlice<UInt8> {
        let l = text.lines[i]
        return text.bytes[l.start..<l.end]
    }
    for (a, b) in hunks {
        let lo = max(0, a - context), hi = min(ops.count - 1, b + context)
        let oldCount = oldBefore[hi + 1] - oldBefore[lo], newCount = newBefore[hi + 1] - newBefore[lo]
        out += Array("@@ -\(range(oldBefore[lo], oldCount)) +\(range(newBefore[lo], newCount)) @@\n".utf8)
        for k in lo...hi {
            switch ops[k] {
            case .keep(let i): emit(32, oldLine(i))
            case .delete(let i): emit(45, oldLine(i))
            case .insert(let line): emit(43, line[...])
            }
        }
    }
    return out
}
