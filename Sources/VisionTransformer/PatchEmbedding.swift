import Tensors

/// Geometry of a P×P, stride-P patch convolution over [batch, channels, height, width] pixels.
public struct PatchShape {
    public let batch, channels, height, width, patch: Int
    public var gridRows: Int { height / patch }
    public var gridCols: Int { width / patch }
    public var patchesPerImage: Int { gridRows * gridCols }
    public var rows: Int { batch * patchesPerImage }
    public var patchDim: Int { channels * patch * patch }

    public init(batch: Int, channels: Int, height: Int, width: Int, patch: Int) {
        self.batch = batch; self.channels = channels; self.height = height; self.width = width; self.patch = patch
    }
}

/// im2col: patches[(b, i, j), (c, di, dj)] = pixels[b, c, i·P + di, j·P + dj] — the column order of a
/// PyTorch Conv2d weight [D, C, P, P], and the row order of HF's `flatten(2).transpose(1, 2)`.
public func im2col(_ patches: UnsafeMutablePointer<Float>, _ pixels: UnsafePointer<Float>, shape s: PatchShape) {
    let p = s.patch
    Parallel.forChunks(s.rows, work: s.rows * s.patchDim) { _, r in
        for row in r {
            let b = row / s.patchesPerImage, ij = row % s.patchesPerImage
            let i = ij / s.gridCols, j = ij % s.gridCols
            var dst = patches + row * s.patchDim
            for c in 0..<s.channels {
                let plane = pixels + (b * s.channels + c) * s.height * s.width
                for di in 0..<p {
                    dst.update(from: plane + (i * p + di) * s.width + j * p, count: p)
                    dst += p
                }
            }
        }
    }
}

/// Adjoint of ``im2col(_:_:shape:)``: dpixels[b, c, y, x] = dpatches[...] (each pixel belongs to one patch
/// because the stride equals the patch size; pixels outside the grid get 0).
public func col2im(_ dpixels: UnsafeMutablePointer<Float>, _ dpatches: UnsafePointer<Float>, shape s: PatchShape) {
    let p = s.patch
    dpixels.initialize(repeating: 0, count: s.batch * s.channels * s.height * s.width)
    for row in 0..<s.rows {
        let b = row / s.patchesPerImage, ij = row % s.patchesPerImage
        let i = ij / s.gridCols, j = ij % s.gridCols
        var src = dpatches + row * s.patchDim
        for c in 0..<s.channels {
            let plane = dpixels + (b * s.channels + c) * s.height * s.width
            for di in 0..<p {
                (plane + (i * p + di) * s.width + j * p).update(from: src, count: p)
                src += p
            }
        }
    }
}

/// Patch embedding: out[rows, D] = im2col(pixels) · Wᵀ + b, with W the conv weight [D, C·P·P].
/// `patches` is scratch [rows, C·P·P] that the backward reads again.
public func patchEmbedForward(_ out: UnsafeMutablePointer<Float>, patches: UnsafeMutablePointer<Float>,
                              _ pixels: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                              bias: UnsafePointer<Float>?, shape s: PatchShape, dim: Int) {
    im2col(patches, pixels, shape: s)
    linearForward(out, patches, weight: weight, bias: bias, rows: s.rows, inFeatures: s.patchDim, outFeatures: dim)
}

/// Backward of ``patchEmbedForward``. `dpatches` is scratch [rows, C·P·P], needed only for `dpixels`.
public func patchEmbedBackward(dpixels: UnsafeMutablePointer<Float>?, dpatches: UnsafeMutablePointer<Float>?,
                               dWeight: UnsafeMutablePointer<Float>?, dBias: UnsafeMutablePointer<Float>?,
                               _ dout: UnsafePointer<Float>, patches: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, shape s: PatchShape, dim: Int) {
    let wantPixels = dpixels != nil && dpatches != nil
    linearBackward(wantPixels ? dpatches : nil, dWeight: dWeight, dBias: dBias, dout, patches, weight: weight,
                   rows: s.rows, inFeatures: s.patchDim, outFeatures: dim)
    if let dpixels, let dpatches { col2im(dpixels, dpatches, shape: s) }
}
