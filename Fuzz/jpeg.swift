// libFuzzer target: RGBImage.decode on a JPEG file (any bytes: the format is detected from the first bytes, so
// mutations that break the signature exercise the other decoder and the unknown-format error too).
// Input: [options][file bytes]
//   options bit 0: ImageDecodeOptions.applyEXIFOrientation; bit 1: decode(path:) through a scratch file instead of
//   the in-memory bytes. maxPixels is 2^18 here (not PIL's 178,956,970) so one input decodes in milliseconds; the
//   refusal of larger headers is part of what is fuzzed.
import Foundation
import Images

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    fuzzImageDecode(data, size, name: "input.jpg")
}
