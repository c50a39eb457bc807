#!/bin/sh
# Builds lib/laptop_audio/speexdsp.wasm: speexdsp's MDF acoustic echo canceller and its
# preprocessor (residual echo suppression) as one WebAssembly module that imports nothing.
#
# Source: speexdsp 1.2.1, the release Debian 12 ships (package speexdsp 1.2.1-1), from the
# upstream tag SpeexDSP-1.2.1 (commit 1b28a0f61bc31162979e1f26f3981fc3637095c8 of
# https://gitlab.xiph.org/xiph/speexdsp, mirrored at https://github.com/xiph/speexdsp).
# Every source file used is checked against its SHA-256 below before anything is compiled.
#
# Toolchain (Debian 12): apt-get install clang-14 lld-14 wasi-libc libclang-rt-dev-wasm32
#
# Usage: scripts/build_speexdsp_wasm.sh /path/to/speexdsp-1.2.1
#   (a git checkout at the tag, or the unpacked release / Debian source; both hold these files)
#
# Float build: the canceller adapts in float, which wasm runs natively and as fast as integer
# code, and the fixed-point build's 16-bit filter weights and saturating arithmetic lose ERLE;
# speexdsp's own docs recommend float wherever an FPU exists.
#
# CI does not run this: the .wasm is committed, and lib/laptop_audio/speexdsp.ts refuses any
# file whose SHA-256 is not SPEEXDSP_WASM_SHA256 there. After a rebuild, update that pin.
# The build is reproducible: the same source and toolchain give the same bytes.
set -eu

src=${1:?usage: scripts/build_speexdsp_wasm.sh /path/to/speexdsp-1.2.1}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out="$repo/lib/laptop_audio/speexdsp.wasm"
clang=${CLANG:-clang-14}

(cd "$src" && sha256sum -c --quiet) <<'SUMS'
2654a4264b2bfe298dedc508748d140111840c315cc8eb646a3a68c13fa75b01  COPYING
a096297873dfd0a07509028d2cdd02d12edf8f1d03319fcecedda003d18d22a8  libspeexdsp/mdf.c
f2579e284dc4ec49e2252901966fa4a93e62245969617e740affe8fda5051a7a  libspeexdsp/preprocess.c
a59ec583e5660207da9cf3c1ddd6a7ff1ed91382eb40df2a4e77d5cddfe14c52  libspeexdsp/fftwrap.c
25bcc6e38baeca23e828bfcbbb1cc0a0d3f6f898d9e02c95cbb4b4c0fb4b3df7  libspeexdsp/smallft.c
da21ffc079092566fc3a7297611cc86b9d08a8f5a91ae81e3427f0b14ad98463  libspeexdsp/filterbank.c
102f6a14a95f8ae0bcfc69270f3a9e3fbba08b63bba688ca524f71e3faa48c23  libspeexdsp/arch.h
fd289dcc47b9ddb2b33039c1990c4644bb279c9413ede6e74fdb2742c3888ee5  libspeexdsp/fftwrap.h
8b86cc1f52c52abe5685c751e30c91b2e24a5a60d30893027445886c30d0d249  libspeexdsp/filterbank.h
a024693b0d29dc4e904021a1b442908c1fa726b18f5d31b0935e38646f2701ff  libspeexdsp/math_approx.h
5ab9c979e8ac1f72c7441d24e39e7840828dd9356aac49a31eabeddb808bf1d3  libspeexdsp/os_support.h
0bd544dbed0096e02da2fd800d673bafb19bd97f56e268b98402ad641726daae  libspeexdsp/pseudofloat.h
715352e7efe55cb671f37fa341610ce7df893016625506e22175d9f1b1b817e9  libspeexdsp/smallft.h
bdce08a5a05d9536771b2c687c5a464647b8132f405271872f4ae84f1f7bb177  libspeexdsp/vorbis_psy.h
ab18db97564a241c9e06d723351c2155bf04a23ac30e0c27a3d86dcc04de3426  include/speex/speex_echo.h
87066ed01639bbc8d3297bb58dbd55bfe1b9cd6e26fc68a1b7f87aa9b61fa9c3  include/speex/speex_preprocess.h
4f97187c057fd8493c787f2526752859cf57007d50fef8d2e03c9b79b2fed490  include/speex/speexdsp_types.h
SUMS

build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
mkdir -p "$build/speex"
cp "$here/speexdsp_wasm/speexdsp_config_types.h" "$build/speex/"

exports="speex_echo_state_init_mc speex_echo_cancellation speex_echo_ctl speex_echo_state_reset
  speex_echo_state_destroy speex_preprocess_state_init speex_preprocess_run speex_preprocess_ctl
  speex_preprocess_state_destroy malloc free"
export_flags=""
for name in $exports; do export_flags="$export_flags -Wl,--export=$name"; done

# shellcheck disable=SC2086 # export_flags is a list of flags
"$clang" --target=wasm32-wasi --sysroot=/usr -O3 -fno-math-errno \
  -DHAVE_CONFIG_H -I"$here/speexdsp_wasm" -I"$build" -I"$src/include" -I"$src/libspeexdsp" \
  -ffile-prefix-map="$src"=speexdsp -ffile-prefix-map="$here"=scripts \
  -nostartfiles -Wl,--no-entry -Wl,--strip-all -Wl,-z,stack-size=65536 \
  -Wl,--initial-memory=1048576 $export_flags \
  "$src/libspeexdsp/mdf.c" "$src/libspeexdsp/preprocess.c" "$src/libspeexdsp/fftwrap.c" \
  "$src/libspeexdsp/smallft.c" "$src/libspeexdsp/filterbank.c" \
  -o "$out"
cp "$src/COPYING" "$repo/lib/laptop_audio/speexdsp.COPYING"
sha256sum "$out"
