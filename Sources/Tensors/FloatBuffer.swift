#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One contiguous, 64-byte aligned, zero-initialised allocation of `Float`s.
///
/// Every role of the model (parameters, gradients, optimizer moments, activations) owns exactly one of these,
/// and hands out pointers into it through a ``TensorLayout`` computed once. Nothing is allocated in a step loop.
public final class FloatBuffer {
    public let base: UnsafeMutablePointer<Float>
    public let count: Int

    /// Allocates `count` floats, zero-filled. 64-byte alignment keeps AVX-512 loads aligned at row starts
    /// whose offsets are multiples of 16.
    public init(count: Int) throws {
        guard count >= 0, count <= Int.max / 8 else { throw AllocationError(bytes: count, reason: "invalid size") }
        var raw: UnsafeMutableRawPointer?
        let bytes = max(1, count) * MemoryLayout<Float>.stride
        let rc = posix_memalign(&raw, 64, bytes)
        guard rc == 0, let raw else {
            throw AllocationError(bytes: bytes, reason: "posix_memalign returned \(rc)")
        }
        memset(raw, 0, bytes)
        self.base = raw.bindMemory(to: Float.self, capacity: max(1, count))
        self.count = count
    }

    deinit { free(base) }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: base, count: count) }

    public func zero() { memset(base, 0, count * MemoryLayout<Float>.stride) }

    public func copy(from other: FloatBuffer) {
        precondition(other.count == count, "FloatBuffer.copy: size mismatch \(other.count) vs \(count)")
        memcpy(base, other.base, count * MemoryLayout<Float>.stride)
    }

    public subscript(i: Int) -> Float {
        get { base[i] }
        set { base[i] = newValue }
    }

    public func toArray() -> [Float] { Array(buffer) }
}

/// Memory for a buffer could not be had (a batch or resolution too large for this machine).
public struct AllocationError: Error, CustomStringConvertible {
    public let bytes: Int
    public let reason: String
    public var description: String {
        "cannot allocate \(bytes / (1 << 20)) MiB (\(reason)): a smaller batch or image size needs less memory"
    }
}
