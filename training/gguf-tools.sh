#!/usr/bin/env bash
# Build the llama.cpp GGUF tools (converter + llama-quantize + llama-simple) from the llama-cpp-python
# sdist, offline-friendly and idempotent.
#
# Why the sdist: it vendors a full llama.cpp (convert_hf_to_gguf.py and the matching gguf-py) that PyPI's
# `gguf` package lacks; the C++ tools come from the same commit, so converter and quantiser agree.
#
# Usage: training/gguf-tools.sh [DEST]      (DEST defaults to $FTJOB_LLAMA_CPP, then <repo>/.cache/llama.cpp)
# Env:   PYTHON (interpreter whose pip downloads the sdist), JOBS (parallel build jobs, default 2),
#        LLAMA_CPP_PYTHON_VERSION (default 0.3.36), LLAMA_CPP_SDIST (use this local sdist, no download).
# Result: DEST/bin/{llama-quantize,llama-simple}, DEST/src/{convert_hf_to_gguf.py,gguf-py,...}, DEST/VERSION.
set -euo pipefail

VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-${FTJOB_LLAMA_CPP:-$ROOT/.cache/llama.cpp}}"
JOBS="${JOBS:-2}"
TOOLS=(llama-quantize llama-simple)
STAMP="$DEST/VERSION"

log() { echo "[gguf-tools] $*"; }

# Remove everything from the unpacked llama.cpp except the converters, their `conversion` package and
# gguf-py, the chat templates and the two built-in vocabularies they load (models/ggml-vocab-*.gguf).
prune_src() {
  local src="$1" keep
  keep="$(mktemp -d "$src.keep.XXXXXX")"
  for p in convert_hf_to_gguf.py convert_lora_to_gguf.py conversion gguf-py LICENSE \
           models/templates models/ggml-vocab-gpt-neox.gguf models/ggml-vocab-llama-spm.gguf; do
    if [[ -e "$src/$p" ]]; then mkdir -p "$keep/$(dirname "$p")" && mv "$src/$p" "$keep/$p"; fi
  done
  rm -rf "$src" && mv "$keep" "$src"
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "llama-cpp-python==$VERSION" ]]; then
  ok=1
  for t in "${TOOLS[@]}"; do [[ -x "$DEST/bin/$t" ]] || ok=0; done
  [[ -f "$DEST/src/convert_hf_to_gguf.py" && -d "$DEST/src/gguf-py" ]] || ok=0
  if [[ $ok == 1 ]]; then
    log "up to date: llama-cpp-python==$VERSION in $DEST"
    exit 0
  fi
fi

for cmd in cmake c++ tar; do
  command -v "$cmd" >/dev/null || { log "error: '$cmd' is required (install cmake and a C++ compiler)"; exit 1; }
done

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON="$(command -v python3)"; fi
fi

mkdir -p "$DEST/dl"
SDIST="${LLAMA_CPP_SDIST:-$DEST/dl/llama_cpp_python-$VERSION.tar.gz}"
if [[ ! -f "$SDIST" ]]; then
  log "downloading the llama-cpp-python==$VERSION sdist (~77 MB)"
  # pip (with build isolation, its build requirements as wheels) prepares the sdist's metadata; nothing is
  # compiled at this step.
  "$PYTHON" -m pip download --quiet --no-deps --no-binary llama-cpp-python --dest "$DEST/dl" "llama-cpp-python==$VERSION"
  found="$(ls "$DEST"/dl/llama_cpp_python-"$VERSION".tar.gz 2>/dev/null || true)"
  [[ -n "$found" ]] || { log "error: download did not produce llama_cpp_python-$VERSION.tar.gz"; exit 1; }
  SDIST="$found"
else
  log "using cached sdist $SDIST"
fi

log "unpacking vendor/llama.cpp"
rm -rf "$DEST/src.tmp" && mkdir -p "$DEST/src.tmp"
top="llama_cpp_python-$VERSION"
tar -xzf "$SDIST" -C "$DEST/src.tmp" --strip-components=3 "$top/vendor/llama.cpp"
[[ -f "$DEST/src.tmp/convert_hf_to_gguf.py" ]] || { log "error: sdist has no vendor/llama.cpp/convert_hf_to_gguf.py"; exit 1; }
rm -rf "$DEST/src" && mv "$DEST/src.tmp" "$DEST/src"

log "configuring (CPU only, static, portable)"
# GGML_NATIVE=OFF: the binary is cached and may run on another CPU (a CI runner, the trainer image).
# Examples are configured (not built) only so that the llama-simple target exists: it is a 200-line
# program over libllama that loads a GGUF and generates a token, our load check. Only the two targets
# below are compiled, so this costs nothing over building llama-quantize alone.
cmake -S "$DEST/src" -B "$DEST/build" -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=OFF -DGGML_CUDA=OFF -DGGML_METAL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_SERVER=OFF \
  -DLLAMA_BUILD_APP=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF >"$DEST/build.log" 2>&1 \
  || { tail -n 30 "$DEST/build.log"; log "error: cmake configure failed (full log: $DEST/build.log)"; exit 1; }

start=$(date +%s)
log "building ${TOOLS[*]} with -j$JOBS (about 4 minutes on 2 idle cores)"
# Show cmake's percentage lines only, so progress is visible without pages of compiler output.
cmake --build "$DEST/build" --target "${TOOLS[@]}" -j"$JOBS" >>"$DEST/build.log" 2>&1 &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  sleep 15
  line="$(grep -E '^\[ *[0-9]+%\]' "$DEST/build.log" | tail -n 1 || true)"
  [[ -n "$line" ]] && log "  $(( $(date +%s) - start ))s ${line:0:100}"
done
wait "$pid" || { tail -n 30 "$DEST/build.log"; log "error: build failed (full log: $DEST/build.log)"; exit 1; }

mkdir -p "$DEST/bin"
for t in "${TOOLS[@]}"; do install -m 0755 "$DEST/build/bin/$t" "$DEST/bin/$t"; done
# Keep only what the converter reads (176 MB of sources become ~3 MB): the object files and the
# C++ sources are not needed once the binaries exist; a version change unpacks afresh anyway.
prune_src "$DEST/src"
rm -rf "$DEST/build"
echo "llama-cpp-python==$VERSION" >"$STAMP"
log "built in $(( $(date +%s) - start ))s: $(ls "$DEST/bin" | tr '\n' ' ')"
