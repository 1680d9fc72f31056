import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The progress bar's text for a terminal `width` columns wide: the fields
/// that fit, most useful first, never wider than `width − 1` (a line that
/// fills the last column wraps on some terminals and the `\r` redraw would
/// then stack lines).
///
/// Always kept: the epoch and the batch count. Dropped first when short of
/// room: samples/s, then the epoch's ETA, the bar, the accuracy, the loss,
/// and last the whole run's ETA. The bar takes the room left (10–30 columns).
struct ProgressLine {
    var prefix = ""
    var epochLabel: String
    var batch: Int
    var batchCount: Int
    var loss: Double
    var accuracy: Double
    var samplesPerSecond: Double
    var epochSecondsLeft: Double
    var runSecondsLeft: Double

    func render(width: Int) -> String {
        let limit = max(width - 1, 10)
        // padded to its final width, so the bar does not jitter as the count grows
        let done = String(batch), total = String(batchCount)
        let count = String(repeating: " ", count: max(0, total.count - done.count)) + done + "/" + total
        // (text, drop rank): higher ranks are dropped first
        var optional: [(text: String, rank: Int)] = [
            ("loss \(decimal(loss))", 2),
            ("acc \(percent(accuracy))", 3),
            ("\(Int(samplesPerSecond.isFinite ? samplesPerSecond : 0)) samples/s", 6),
            ("epoch ETA \(Self.duration(epochSecondsLeft))", 5),
            ("run ETA \(Self.duration(runSecondsLeft))", 1),
        ]
        var withBar = true
        func line(barWidth: Int?) -> String {
            var parts = [prefix + epochLabel]
            if let barWidth { parts.append(bar(barWidth)) }
            parts.append(count)
            parts += optional.map(\.text)
            return parts.joined(separator: "  ")
        }
        // Drop fields until the line fits with the narrowest bar (rank 4: the bar itself).
        while true {
            let candidate = line(barWidth: withBar ? 10 : nil)
            if candidate.count <= limit { break }
            let worst = optional.map(\.rank).max() ?? 0
            if withBar && worst < 4 { withBar = false; continue }
            guard let index = optional.firstIndex(where: { $0.rank == worst }) else { break }
            optional.remove(at: index)
        }
        guard withBar else { return String(line(barWidth: nil).prefix(limit)) }
        let spare = limit - line(barWidth: 10).count
        return String(line(barWidth: 10 + min(max(spare, 0), 20)).prefix(limit))
    }

    /// `[=====>    ]`, `width` columns including the brackets.
    private func bar(_ width: Int) -> String {
        let inside = width - 2
        let filled = inside * batch / max(batchCount, 1)
        let head = filled < inside ? ">" + String(repeating: " ", count: inside - filled - 1) : ""
        return "[" + String(repeating: "=", count: filled) + head + "]"
    }

    /// `42 s`, `3:05`, `1:02:03`; `?` before there is a rate.
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s) s" }
        if s < 3600 { return String(format: "%d:%02d", s / 60, s % 60) }
        return String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
    }
}

/// The terminal's width in columns (TIOCGWINSZ on stdout), else `$COLUMNS`, else 80.
func terminalWidth() -> Int {
    var size = winsize()
    if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
    if let columns = ProcessInfo.processInfo.environment["COLUMNS"].flatMap(Int.init), columns > 0 { return columns }
    return 80
}
