import ArgumentParser
import BatchNormKit
import Foundation

/// `bnkit lab`: the seed lesson's claims measured on Fashion-MNIST — eleven
/// experiments, a CSV each and `summary.json` with computed verdicts;
/// Scripts/plot_report.py draws the charts and writes REPORT.md and index.html.
struct LabCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lab",
        abstract: "Run the BatchNorm lab: every claim of the lesson, measured over seeds, with computed verdicts.",
        discussion: """
            Writes <output>/NN-name.csv for every experiment and <output>/summary.json (claims, settings, \
            verdicts and the rules that computed them, wall times). `make report` runs this and then \
            Scripts/plot_report.py for the charts, REPORT.md and index.html.
            """
    )

    @Flag(help: "The quick budget (fewer samples, epochs, seeds and sweep points; same code paths).")
    var quick = false
    @Option(help: ArgumentHelp("Directory for the CSVs and summary.json.", valueName: "DIR"))
    var output: String = "report"
    @Option(help: ArgumentHelp("Only these experiments, e.g. 1,6,8.", valueName: "LIST"))
    var only: String?
    @OptionGroup var threads: ThreadOptions
    @OptionGroup var data: DataOptions

    func experiments() throws -> [Int] {
        guard let only else { return Lab.experimentNumbers }
        let numbers = only.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard numbers.allSatisfy({ $0 != nil && Lab.experimentNumbers.contains($0!) }), !numbers.isEmpty else {
            throw ValidationError("--only must be a comma-separated list of experiment numbers 1…\(Lab.experimentNumbers.count), got \"\(only)\"")
        }
        return numbers.map { $0! }
    }

    func validate() throws { _ = try experiments() }

    func run() throws {
        try reportingErrors {
            try threads.apply()
            try Lab.prepareDirectory(output)
            let (dataset, _) = try data.load()
            let map = try InputStandardization(fittedTo: LabeledSamples(dataset.train))
            let lab = try Lab(settings: quick ? .quick : .full, train: try map.apply(to: LabeledSamples(dataset.train)),
                              test: try map.apply(to: LabeledSamples(dataset.test)), directory: output,
                              dataDescription: "Fashion-MNIST (\(dataset.directory)), inputs standardized with the training split's mean and std")
            print("lab    \(quick ? "quick" : "full") budget, \(threadCount()) thread\(threadCount() == 1 ? "" : "s"), writing \(output)/")
            let start = ContinuousClock.now
            try lab.run(only: try experiments()) { line in
                print(line)
                fflush(stdout)
            }
            print("lab    done in \(String(format: "%.1f", seconds(since: start))) s; summary \(output)/summary.json")
        }
    }
}
