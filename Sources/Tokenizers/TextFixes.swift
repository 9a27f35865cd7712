import Foundation

/// The parts of `ftfy.fix_text` (ftfy 6, default settings) that OpenCLIP's cleaning relies on for ordinary text,
/// in ftfy's order: HTML entities unescaped once when the text has no `<`, Latin ligatures split, full-width
/// characters and the ideographic space made narrow, curly quotes straightened, line breaks unified, control
/// characters removed, NFC normalization.
///
/// Left out: ftfy's mojibake repair (`fix_encoding`: text that was UTF-8 decoded as Latin-1/windows-1252, e.g.
/// `schÃ¶n`), which needs ftfy's byte-sequence heuristics; such text tokenizes as written.
public enum TextFixes {
    public static func fixText(_ text: String) -> String {
        var t = text
        if !t.contains("<") { t = HTMLEntities.unescape(t) }
        var out = String.UnicodeScalarView()
        var previousCR = false
        for s in t.unicodeScalars {
            if previousCR && s == "\n" { previousCR = false; continue }   // \r\n → \n
            previousCR = s == "\r"
            if let lig = ligatures[s.value] { out.append(contentsOf: lig.unicodeScalars); continue }
            switch s.value {
            case 0x3000: out.append(" ")                                      // ideographic space
            case 0xFF01...0xFF5E: out.append(Unicode.Scalar(s.value - 0xFEE0)!)  // full-width ASCII
            case 0xFF61...0xFFDC, 0xFFE8...0xFFEE:                            // half-width forms: NFKC
                out.append(contentsOf: String(s).precomposedStringWithCompatibilityMapping.unicodeScalars)
            case 0x02BC, 0x2018...0x201B: out.append("'")
            case 0x201C...0x201F: out.append("\"")
            case 0x0D, 0x2028, 0x2029, 0x85: out.append("\n")
            case 0x00...0x08, 0x0B, 0x0E...0x1F, 0x7F, 0x206A...0x206F, 0xFEFF, 0xFFF9...0xFFFC, 0x1D173...0x1D17A,
                 0xE0000...0xE007F:
                continue                                                       // control characters
            default: out.append(s)
            }
        }
        return String(out).precomposedStringWithCanonicalMapping
    }

    /// ftfy's LIGATURES table.
    static let ligatures: [UInt32: String] = [
        0x0132: "IJ", 0x0133: "ij", 0x0149: "ʼn", 0x01C4: "DŽ", 0x01C5: "Dž", 0x01C6: "dž", 0x01C7: "LJ", 0x01C8: "Lj",
        0x01C9: "lj", 0x01CA: "NJ", 0x01CB: "Nj", 0x01CC: "nj", 0x01F1: "DZ", 0x01F2: "Dz", 0x01F3: "dz",
        0xFB00: "ff", 0xFB01: "fi", 0xFB02: "fl", 0xFB03: "ffi", 0xFB04: "ffl", 0xFB05: "ſt", 0xFB06: "st",
    ]
}
