import Testing
@testable import bnkit

// The progress bar at 40, 80 and 120 columns: never wider than the
// terminal minus one column (so the `\r` redraw never wraps), the epoch and
// batch count always there, fields dropped in the documented order.

@Suite("Progress line")
struct ProgressLineTests {
    let line = ProgressLine(prefix: "", epochLabel: "epoch  3/10", batch: 234, batchCount: 469, loss: 0.41234,
                            accuracy: 0.8512, samplesPerSecond: 74213, epochSecondsLeft: 2.1, runSecondsLeft: 65)

    @Test("fits every width, keeping the essentials", arguments: [40, 80, 120])
    func fits(width: Int) {
        let text = line.render(width: width)
        #expect(text.count <= width - 1, "\(text.count) columns at width \(width): \(text)")
        #expect(text.hasPrefix("epoch  3/10"))
        #expect(text.contains("234/469"))
    }

    @Test("120 columns: every field and the widest bar")
    func wide() {
        let text = line.render(width: 120)
        for field in ["loss 0.4123", "acc 85.12%", "74213 samples/s", "epoch ETA 2 s", "run ETA 1:05", "[===========>            ]"] {
            #expect(text.contains(field), "missing \(field) in \(text)")
        }
    }

    @Test("80 columns: samples/s goes first, the run's ETA and a bar stay")
    func standard() {
        let text = line.render(width: 80)
        #expect(!text.contains("samples/s"))
        #expect(text.contains("run ETA 1:05"))
        #expect(text.contains("loss 0.4123") && text.contains("acc 85.12%"))
        #expect(text.contains("["))
    }

    @Test("40 columns: no bar; the run's ETA outlasts loss and accuracy")
    func narrow() {
        let text = line.render(width: 40)
        #expect(!text.contains("["))
        #expect(!text.contains("acc"))
        #expect(text.contains("run ETA 1:05"), "\(text)")
    }

    @Test("the batch count keeps its width, so the bar does not move")
    func countWidth() {
        var early = line
        early.batch = 7
        #expect(early.render(width: 80).count == line.render(width: 80).count)
        #expect(early.render(width: 80).contains("  7/469"))
    }

    @Test("durations", arguments: [(42.4, "42 s"), (185, "3:05"), (3723, "1:02:03"), (Double.nan, "?")])
    func durations(seconds: Double, text: String) {
        #expect(ProgressLine.duration(seconds) == text)
    }
}
