import CShim
import Synchronization

/// A one-line progress display on stderr: redrawn in place (at most 4 times
/// a second) when stderr is a terminal, or one plain line every 5 seconds
/// when `--progress` sends it elsewhere. Safe to call from several threads.
public final class ProgressMeter: @unchecked Sendable {
    public let enabled: Bool
    private let total: UInt64?
    private let label: String
    private let interactive: Bool
    private let stopwatch = Stopwatch()
    /// What the threads that report progress share.
    private struct Shown {
        var lastDraw = 0.0
        var drew = false
        var processed: UInt64 = 0
        var written: UInt64? = nil
    }
    private let shown = Mutex(Shown())
    /// A decompressor's meter: the ratio is output to input (restore reads
    /// compressed bytes and writes more), not input to output.
    public var expanding = false

    /// `forced` is the applet's --progress flag. `total` enables % and ETA.
    public init(label: String, total: UInt64?, forced: Bool) {
        interactive = isTerminal(2)
        enabled = forced || interactive
        self.total = total
        self.label = label
    }

    /// Reports `processed` bytes of input (and `written` bytes of output,
    /// when the meter shows a compression ratio). Cheap when nothing is drawn.
    public func update(processed: UInt64, written: UInt64? = nil) {
        guard enabled else { return }
        let now = stopwatch.elapsed
        shown.withLock { state in
            state.processed = processed
            state.written = written
            let interval = interactive ? 0.25 : 5.0
            if now - state.lastDraw >= interval {
                state.lastDraw = now
                draw(now, &state)
            }
        }
    }

    /// Clears the progress line so the summary stands alone.
    public func finish() {
        guard enabled else { return }
        shown.withLock { state in
            if state.drew && interactive { writeText("\r\u{1B}[K", to: 2) }
            state.drew = false
        }
    }

    private func draw(_ elapsed: Double, _ state: inout Shown) {
        let processed = state.processed, written = state.written
        var line = "\(label): \(formatBytes(processed))"
        if let total, total > 0 {
            let percent = min(100, Int(Double(processed) * 100 / Double(total)))
            line += " of \(formatBytes(total)) (\(percent)%)"
        }
        line += " \(formatRate(bytes: processed, seconds: elapsed))"
        if let written {
            line += ", out \(formatBytes(written)) \(formatRate(bytes: written, seconds: elapsed))"
                + " (\(expanding ? formatRatio(input: written, output: processed) : formatRatio(input: processed, output: written)))"
        }
        if let total, processed > 0, processed < total, elapsed > 0 {
            let remaining = Double(total - processed) / (Double(processed) / elapsed)
            line += ", ETA \(formatDuration(remaining))"
        }
        if interactive {
            let width = Int(rb_terminal_columns(2))
            if width > 1 && line.count >= width { line = String(line.prefix(width - 1)) }
            writeText("\r" + line + "\u{1B}[K", to: 2)
        } else {
            writeText(line + "\n", to: 2)
        }
        state.drew = true
    }
}
