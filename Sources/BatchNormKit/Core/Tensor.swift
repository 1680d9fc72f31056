/// A row-major Float32 array with a shape — BatchNormKit's only data type.
///
/// `Tensor` is a class: like `torch.Tensor` it has reference semantics, so a
/// layer can hand out its output buffer without a copy and reuse it on the
/// next step (no heap allocation per training step). A layer's output is
/// overwritten by that layer's next `forward`; call ``copy()`` to keep it.
public final class Tensor {
    /// Dimensions, outermost first, e.g. `[N, C]` or `[N, C, L]`.
    public private(set) var shape: [Int]
    /// Number of elements, the product of `shape`.
    public private(set) var count: Int
    @usableFromInline var _base: UnsafeMutablePointer<Float>
    @usableFromInline var _capacity: Int

    // MARK: - Creating

    /// A zero-filled tensor. Throws on a negative dimension.
    public init(zeros shape: [Int]) throws {
        let count = try Tensor.elementCount(of: shape)
        self.shape = shape
        self.count = count
        _capacity = Swift.max(count, 1)
        _base = Tensor._allocate(_capacity)
        _base.initialize(repeating: 0, count: _capacity)
    }

    /// A tensor holding `scalars` in row-major order.
    /// Throws when `scalars.count` is not the product of `shape`.
    public convenience init(shape: [Int], scalars: [Float]) throws {
        try self.init(zeros: shape)
        guard scalars.count == count else {
            throw BatchNormKitError.elementCountMismatch(context: "Tensor(shape: \(shape))", expected: count, got: scalars.count)
        }
        scalars.withUnsafeBufferPointer { _base.update(from: $0.baseAddress!, count: count) }
    }

    /// A tensor with a shape known to be valid (internal: layers' buffers).
    init(_validShape shape: [Int]) {
        let count = shape.reduce(1, *)
        self.shape = shape
        self.count = count
        _capacity = Swift.max(count, 1)
        _base = Tensor._allocate(_capacity)
        _base.initialize(repeating: 0, count: _capacity)
    }

    deinit { UnsafeMutableRawPointer(_base).deallocate() }

    /// Storage on a 64-byte (cache-line) boundary: rows and runs whose length
    /// is a multiple of 16 then start on whole lines, so the kernels' streaming
    /// stores never share a line with a normal store (mixing the two on one
    /// line slowed a GroupNorm forward several-fold: Benchmarks/README.md),
    /// and vector loads never split
    /// a line at a row start.
    static func _allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
            .bindMemory(to: Float.self, capacity: max(count, 1))
    }

    /// A deep copy that no layer will overwrite.
    public func copy() -> Tensor {
        let t = Tensor(_validShape: shape)
        t._base.update(from: _base, count: count)
        return t
    }

    static func elementCount(of shape: [Int]) throws -> Int {
        var total = 1
        for d in shape {
            guard d >= 0 else {
                throw BatchNormKitError.invalidArgument(name: "shape", value: "\(shape)", requirement: "dimensions must be ≥ 0")
            }
            let (p, overflow) = total.multipliedReportingOverflow(by: d)
            guard !overflow else {
                throw BatchNormKitError.invalidArgument(name: "shape", value: "\(shape)", requirement: "element count overflows Int")
            }
            total = p
        }
        return total
    }

    // MARK: - Reading and writing

    /// The elements, row-major, as a new array.
    public var scalars: [Float] { Array(UnsafeBufferPointer(start: _base, count: count)) }

    /// Element at flat row-major index `i`.
    ///
    /// An index out of range is a precondition failure (a trap), as for a
    /// Swift `Array`: the one place the library stops instead of throwing,
    /// since a subscript cannot throw and a wrong index is a bug in the
    /// caller, not bad input. Every other public entry point throws a
    /// ``BatchNormKitError``.
    public subscript(flat i: Int) -> Float {
        get { precondition(i >= 0 && i < count, "index \(i) out of range 0..<\(count)"); return _base[i] }
        set { precondition(i >= 0 && i < count, "index \(i) out of range 0..<\(count)"); _base[i] = newValue }
    }

    /// Element at a multi-dimensional index, one coordinate per dimension.
    /// A wrong coordinate count or an index out of range traps, as
    /// ``subscript(flat:)`` does.
    public subscript(_ index: Int...) -> Float {
        get { _base[flatIndex(index)] }
        set { _base[flatIndex(index)] = newValue }
    }

    private func flatIndex(_ index: [Int]) -> Int {
        precondition(index.count == shape.count, "index \(index) has \(index.count) coordinates, tensor has \(shape.count) dimensions")
        var flat = 0
        for (i, d) in zip(index, shape) {
            precondition(i >= 0 && i < d, "index \(index) out of range for shape \(shape)")
            flat = flat * d + i
        }
        return flat
    }

    /// Read-only access to the elements.
    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: _base, count: count))
    }

    /// Read-write access to the elements (the tensor's own storage).
    @inlinable
    public func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeMutableBufferPointer(start: _base, count: count))
    }

    /// Base address for kernels; valid while `self` is alive.
    @inlinable var _pointer: UnsafeMutablePointer<Float> { _base }

    /// Overwrites every element with `value`.
    public func fill(_ value: Float) { _base.update(repeating: value, count: count) }

    /// Multiplies every element by `factor`, in place.
    func _scale(by factor: Float) { for i in 0..<count { _base[i] *= factor } }

    /// Copies `other`'s elements into `self`. Throws when the shapes differ.
    public func assign(from other: Tensor) throws {
        guard other.shape == shape else {
            throw BatchNormKitError.shapeMismatch(context: "Tensor.assign", expected: "\(shape)", got: other.shape)
        }
        _base.update(from: other._base, count: count)
    }

    /// Gives the tensor a new shape with the same or fewer elements than it
    /// has room for, reallocating only when it must grow. Internal: layers
    /// resize their own buffers when the batch size changes.
    func _reshapeReusingStorage(_ newShape: [Int]) {
        let newCount = newShape.reduce(1, *)
        if newCount > _capacity {
            UnsafeMutableRawPointer(_base).deallocate()
            _capacity = newCount
            _base = Tensor._allocate(newCount)
            _base.initialize(repeating: 0, count: newCount)
        }
        if shape != newShape { shape = newShape }
        count = newCount
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let shown = count <= 8 ? scalars.map { "\($0)" }.joined(separator: ", ")
            : (0..<6).map { "\(_base[$0])" }.joined(separator: ", ") + ", …"
        return "Tensor(shape: \(shape), [\(shown)])"
    }
}

/// A buffer a layer owns and resizes to the batch it sees.
extension Optional where Wrapped == Tensor {
    /// The existing tensor reshaped to `shape`, or a new one the first time.
    mutating func _reuse(shape: [Int]) -> Tensor {
        if let t = self { t._reshapeReusingStorage(shape); return t }
        let t = Tensor(_validShape: shape)
        self = t
        return t
    }

    /// Like ``_reuse(shape:)`` for `(rows, columns)`, building no array when
    /// the shape is unchanged (the steady state of a training loop).
    mutating func _reuse(rows: Int, columns: Int) -> Tensor {
        if let t = self, t.shape.count == 2, t.shape[0] == rows, t.shape[1] == columns { return t }
        return _reuse(shape: [rows, columns])
    }

    /// Like ``_reuse(shape:)`` with another tensor's shape.
    mutating func _reuse(sameShapeAs other: Tensor) -> Tensor {
        if let t = self, t.shape == other.shape { return t }
        return _reuse(shape: other.shape)
    }
}
