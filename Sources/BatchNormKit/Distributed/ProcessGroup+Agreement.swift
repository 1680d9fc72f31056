// Start-up agreement: before a data-parallel job trains, its ranks check that
// they were started alike — the same flags, the same data, the same model. A
// rank that differs would not fail; it would silently train something else.

extension ProcessGroup {
    /// Checks that every rank passes the same `settings` (names and values,
    /// in the same order), comparing 64-bit FNV-1a hashes of each; the same
    /// call on every rank.
    ///
    /// Each rank writes its hashes (as two exact 32-bit halves) into its own
    /// slot of a zeroed buffer, so one all-reduce gathers every rank's.
    ///
    /// - Throws: `configurationMismatch` on every rank, naming each setting
    ///   that differs from rank 0's and the ranks where it does (rank 0's own
    ///   value quoted, which rank 0 prints).
    public func agree(on settings: [(name: String, value: String)]) throws {
        // first the number of settings, so that the main exchange has the same count everywhere
        let counts = UnsafeMutableBufferPointer<Double>.allocate(capacity: size)
        defer { counts.deallocate() }
        counts.initialize(repeating: 0)
        counts[rank] = Double(settings.count)
        try allReduceSum(counts)
        if let differing = (0..<size).first(where: { counts[$0] != counts[0] }) {
            throw BatchNormKitError.configurationMismatch(differences: [
                "rank \(differing) has \(Int(counts[differing])) settings, rank 0 has \(Int(counts[0])) (different bnkit versions?)",
            ])
        }
        let width = 2 * settings.count
        let hashes = UnsafeMutableBufferPointer<Double>.allocate(capacity: size * width)
        defer { hashes.deallocate() }
        hashes.initialize(repeating: 0)
        for (index, setting) in settings.enumerated() {
            let hash = _fnv1a64(setting.name + "=" + setting.value)
            hashes[rank * width + 2 * index] = Double(hash >> 32)
            hashes[rank * width + 2 * index + 1] = Double(hash & 0xFFFF_FFFF)
        }
        try allReduceSum(hashes)
        var differences: [String] = []
        for (index, setting) in settings.enumerated() {
            let differing = (1..<max(size, 1)).filter { r in
                hashes[r * width + 2 * index] != hashes[2 * index] || hashes[r * width + 2 * index + 1] != hashes[2 * index + 1]
            }
            guard !differing.isEmpty else { continue }
            let ranks = differing.map(String.init).joined(separator: ", ")
            let quoted = rank == 0 ? " (rank 0: \(setting.value))" : ""
            differences.append("\(setting.name) differs on rank\(differing.count > 1 ? "s" : "") \(ranks) from rank 0\(quoted)")
        }
        if !differences.isEmpty { throw BatchNormKitError.configurationMismatch(differences: differences) }
    }
}

/// 64-bit FNV-1a of a string's UTF-8 bytes.
package func _fnv1a64(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
    return hash
}

extension LabeledSamples {
    /// A 64-bit fingerprint of the features' bits and the labels, for
    /// ``ProcessGroup/agree(on:)``: ranks on different machines must hold
    /// the same data. One pass over the data (FNV-1a over 32-bit words).
    package var _fingerprint: UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325 ^ UInt64(count) &* 31 ^ UInt64(featureCount)
        features.withUnsafeBufferPointer { f in
            for value in f { hash = (hash ^ UInt64(value.bitPattern)) &* 0x0000_0100_0000_01B3 }
        }
        labels.withUnsafeBufferPointer { l in
            for label in l { hash = (hash ^ UInt64(UInt32(bitPattern: label))) &* 0x0000_0100_0000_01B3 }
        }
        return hash
    }
}
