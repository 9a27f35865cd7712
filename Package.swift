// swift-tools-version:6.0
import PackageDescription

// Dependencies point one way:
//   SafeTensors                      — the file format, no math
//   Tensors                          — buffers + OpenBLAS + SIMD element-wise kernels (CKernels), seeded RNG
//   Datasets                         — image sets (IDX/CSV), transforms, corruptions, epoch sampling
//   Tokenizers                       — CLIP's byte-level BPE tokenizer (text → token ids)
//   Images                           — image files: decoding, PIL-exact resizing, preprocessing, file lists
//   VisionTransformer                — layers, the ViT and CLIP towers, weight loading (never imports MPI)
//   Communication                    — rank / size / allSum over Open MPI (never imports the model)
//   Training                         — the training loop: losses, optimizers, probes, data-parallel gradient sync;
//                                      the only module that holds both the model and the communicator
//   selora (executable)              — the only place that holds model and communication together
let package = Package(
    name: "SelectiveLoRA",
    products: [
        .executable(name: "selora", targets: ["selora"]),
        .library(name: "VisionTransformer", targets: ["VisionTransformer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // System libraries (Debian packages; see launch/setup).
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CTurboJPEG", path: "Sources/CTurboJPEG", pkgConfig: "libturbojpeg",
                       providers: [.apt(["libturbojpeg0-dev"])]),
        .systemLibrary(name: "CSPNG", path: "Sources/CSPNG", pkgConfig: "spng",
                       providers: [.apt(["libspng-dev"])]),
        // Vectorized element-wise kernels (GELU, softmax, LayerNorm) over SLEEF, with runtime CPU dispatch.
        .target(name: "CKernels", path: "Sources/CKernels",
                cSettings: [.unsafeFlags(["-O3", "-fno-math-errno"])],
                linkerSettings: [.linkedLibrary("sleef"), .linkedLibrary("m")]),

        .target(name: "SafeTensors", path: "Sources/SafeTensors"),
        .target(name: "Datasets", dependencies: ["CZlib", "Tensors"], path: "Sources/Datasets"),
        .target(name: "Tensors", dependencies: ["COpenBLAS", "CKernels"], path: "Sources/Tensors"),
        .target(name: "Tokenizers", dependencies: ["CZlib"], path: "Sources/Tokenizers"),
        // Image files: JPEG / PNG decoding (libjpeg-turbo, libspng), PIL-exact resizing, preprocessing recipes.
        .target(name: "Images", dependencies: ["Tensors", "Datasets", "SafeTensors", "CTurboJPEG", "CSPNG"], path: "Sources/Images"),
        .target(name: "VisionTransformer", dependencies: ["Tensors", "SafeTensors"],
                path: "Sources/VisionTransformer"),
        .target(name: "Communication", dependencies: ["CMPI"], path: "Sources/Communication"),
        .target(name: "Training", dependencies: ["VisionTransformer", "Tensors", "Datasets", "SafeTensors", "Communication",
                                                 "Tokenizers"],
                path: "Sources/Training"),
        .executableTarget(
            name: "selora",
            dependencies: [
                "VisionTransformer", "Tensors", "SafeTensors", "Datasets", "Communication", "Training", "Tokenizers", "Images",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/selora"),

        .target(name: "TestHelpers", dependencies: ["Tensors", "Datasets", "VisionTransformer"], path: "Tests/TestHelpers"),
        // Test-only: replaces malloc & co. to count heap allocations (see its header). Only test targets may depend
        // on it; linked into a product it would count every allocation of that program.
        .target(name: "CAllocationCounter", path: "Tests/CAllocationCounter"),
        .testTarget(name: "SafeTensorsTests", dependencies: ["SafeTensors"], path: "Tests/SafeTensorsTests"),
        .testTarget(name: "KernelsTests", dependencies: ["Tensors", "CKernels", "TestHelpers"], path: "Tests/KernelsTests"),
        .testTarget(name: "ImagesTests", dependencies: ["Images", "Datasets", "SafeTensors", "Tensors"], path: "Tests/ImagesTests"),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets", "SafeTensors"], path: "Tests/DatasetsTests"),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "TestHelpers", "VisionTransformer", "SafeTensors", "Tensors",
                                                        "Datasets", "Communication"], path: "Tests/TrainingTests"),
        .testTarget(name: "VisionTransformerTests",
                    dependencies: ["VisionTransformer", "Tensors", "SafeTensors", "TestHelpers", "Tokenizers"],
                    path: "Tests/VisionTransformerTests"),
        .testTarget(name: "AllocationTests",
                    dependencies: ["CAllocationCounter", "Training", "TestHelpers", "Datasets", "Communication",
                                   "VisionTransformer"],
                    path: "Tests/AllocationTests"),
    ],
    swiftLanguageModes: [.v5]
)
