/// The element type of a tensor in a safetensors file, spelled exactly as in the header's `"dtype"` field.
///
/// Every element is stored little-endian. `BOOL` is one byte per element (0 = false, anything else = true).
/// `F16` is IEEE 754 binary16; `BF16` is bfloat16 (the upper 16 bits of an IEEE 754 binary32).
public enum DType: String, CaseIterable, Sendable {
    case F64, F32, F16, BF16
    case I64, I32, I16, I8
    case U64, U32, U16, U8
    case BOOL

    /// Bytes per element: 8 for F64/I64/U64, 4 for F32/I32/U32, 2 for F16/BF16/I16/U16, 1 for I8/U8/BOOL.
    public var byteSize: Int {
        switch self {
        case .F64, .I64, .U64: return 8
        case .F32, .I32, .U32: return 4
        case .F16, .BF16, .I16, .U16: return 2
        case .I8, .U8, .BOOL: return 1
        }
    }

    /// Position in the `Dtype` enum of Hugging Face's `safetensors` Rust crate
    /// (BOOL < U8 < I8 < I16 < U16 < F16 < BF16 < I32 < U32 < F32 < F64 < I64 < U64).
    /// The writer lays tensor data out in *descending* rank, then by name, exactly as that crate's
    /// `serialize` does, so every tensor starts at a multiple of its element size.
    var referenceOrder: Int {
        switch self {
        case .BOOL: return 0
        case .U8: return 1
        case .I8: return 2
        case .I16: return 3
        case .U16: return 4
        case .F16: return 5
        case .BF16: return 6
        case .I32: return 7
        case .U32: return 8
        case .F32: return 9
        case .F64: return 10
        case .I64: return 11
        case .U64: return 12
        }
    }
}
