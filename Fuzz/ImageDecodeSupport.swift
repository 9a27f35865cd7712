// Shared by the jpeg and png fuzz targets (launch/fuzz compiles it into both): one input through RGBImage.decode,
// with the invariants every result and every error must satisfy.
import Foundation
import Images

/// The fuzzers' pixel cap: 2^18 pixels, so one input decodes in milliseconds even under ASan.
let fuzzMaxPixels = 1 << 18

/// Input: [options][file bytes]; options bit 0: apply the EXIF orientation; bit 1: read through `decode(path:)`
/// from a scratch file named `name` instead of the in-memory bytes.
func fuzzImageDecode(_ data: UnsafePointer<UInt8>, _ size: Int, name: String) -> Int32 {
    var input = FuzzInput(data, size)
    let flags = input.byte()
    let file = input.rest()
    let options = ImageDecodeOptions(applyEXIFOrientation: flags & 1 != 0, maxPixels: fuzzMaxPixels)
    let path: String
    do {
        let image: RGBImage
        if flags & 2 != 0 {
            path = FuzzScratch.write(file, name)
            image = try RGBImage.decode(path: path, options: options)
        } else {
            path = name
            image = try file.withUnsafeBytes { try RGBImage.decode($0, path: name, options: options) }
        }
        precondition(image.width >= 1 && image.height >= 1 && image.width * image.height <= fuzzMaxPixels)
        precondition(image.pixels.count == image.width * image.height * 3)
        if flags & 1 == 0 {
            // Without the orientation the same bytes decode the same way through the array entry point.
            precondition(try! RGBImage.decode(Array(file), path: name, options: options) == image)
        }
        fuzzNote("decoded \(image.width)×\(image.height)")
    } catch let e as ImageFileError {
        precondition(e.description.hasPrefix(e.path + ": "), "error without its path: \(e)")
        fuzzNote("error: \(e)")
    } catch {
        fatalError("RGBImage.decode threw a non-ImageFileError: \(error)")
    }
    return 0
}
