// Which Highway targets the kernel translation units compile. Include this FIRST in every file that
// includes hwy/foreach_target.h, so all kernel files agree.
//
// We keep AVX2 (AVX2+FMA+F16C+BMI2, every x86-64 CPU since Haswell/Zen) and AVX3 (AVX-512 F/VL/DQ/BW,
// Skylake-X and later, Zen 4) and drop SSSE3/SSE4 to save compile time. Highway also always compiles
// its static target (HWY_SCALAR for our baseline x86-64 flags); the kernel bodies are skipped there
// because our kScalar path is the plain C++ reference, not Highway's emulation.
#pragma once

#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SSSE3 | HWY_SSE4)
#endif

// True inside a per-target pass whose kernels we build and dispatch to.
#define SQ_HWY_KERNEL_TARGET (HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3)
