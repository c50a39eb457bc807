#!/usr/bin/env bash
# Regenerates the bundled demo call used by `deno task demo`:
#   demo/inbound.wav   the person answering the phone (Festival, HTS voice cmu_us_slt_arctic_hts, female)
#   demo/outbound.wav  the caller at the laptop       (Flite, voice kal, duration_stretch 1.2, male)
#   demo/script.tsv    one line per turn: <track>\t<start_ms>\t<text>  (reference text for WER tests)
#
# Both WAVs are 8 kHz mono G.711 µ-law, the same length, on one shared timeline:
# while one side talks the other file holds silence, as on a real two-sided call.
#
# Debian packages needed (only to regenerate; the WAVs are committed, CI doesn't run this):
#   apt-get install sox flite festival festvox-us-slt-hts
#
# The voices, the outbound rate and the wording were chosen by measuring WER with the
# project's speech model (sherpa-onnx kws-zipformer-gigaspeech-3.3M, after a µ-law round
# trip, and through `make_call.ts --simulate --fast`). Of the Debian voices, Festival's
# HTS slt was best by far (~5% WER); espeak-ng was 40-70%. Flite kal at duration_stretch
# 1.2 was the best male voice on these lines. Any change to text, voice or timing moves
# the WER by a few words either way, so re-measure after editing.
# Output is deterministic (no dither: -D; repeatable mode: -R): same input, same bytes.
#
# Usage: scripts/make_demo_audio.sh   (from anywhere; writes into <repo>/demo/)
set -euo pipefail

cd "$(dirname "$0")/.."

for tool in sox soxi flite text2wave; do
  command -v "$tool" >/dev/null || {
    echo "make_demo_audio: '$tool' not found; apt-get install sox flite festival festvox-us-slt-hts" >&2
    exit 1
  }
done

RATE=8000
LEAD_MS=400   # silence before the phone is answered
GAP_MS=800    # silence between turns
TAIL_MS=1000  # silence after the last turn

# <track>|<text>; the phone party (inbound) answers first, then the turns alternate.
TURNS=(
  "inbound|Hello, this is the front desk. How can I help you today?"
  "outbound|Hi, I would like to make a dinner reservation for tomorrow night."
  "inbound|Of course. How many people will be with you?"
  "outbound|There will be six of us, around seven in the evening."
  "inbound|Seven o'clock is fine. Would you like a table by the window?"
  "outbound|Yes please, that would be really nice."
  "inbound|All right, you are all set for tomorrow at seven."
  "outbound|Great, thanks again. Have a good night."
)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# synth <track> <text> <out.wav>: 8 kHz mono 16-bit, the synthesizer's leading/trailing silence
# (below -50 dB) trimmed, peak -3 dBFS.
synth() {
  local track=$1 text=$2 out=$3 raw="$tmp/raw.wav"
  case "$track" in
    inbound)
      printf '%s\n' "$text" | text2wave -eval '(voice_cmu_us_slt_arctic_hts)' -o "$raw" ;;
    outbound)
      flite -voice kal --setf duration_stretch=1.2 -t "$text" -o "$raw" ;;
    *) echo "make_demo_audio: unknown track '$track'" >&2; exit 1 ;;
  esac
  sox -D -R "$raw" -r "$RATE" -c 1 -b 16 -e signed-integer "$out" \
    silence 1 0.02 -50d reverse silence 1 0.02 -50d reverse norm -3 rate -v "$RATE"
}

# silence <N>s <out.wav>: N samples of silence
silence() {
  sox -D -R -r "$RATE" -c 1 -n -b 16 -e signed-integer "$2" trim 0 "$1"
}

in_parts=() out_parts=()
silence "$((LEAD_MS * RATE / 1000))s" "$tmp/lead.wav"
silence "$((GAP_MS * RATE / 1000))s" "$tmp/gap.wav"
silence "$((TAIL_MS * RATE / 1000))s" "$tmp/tail.wav"
in_parts+=("$tmp/lead.wav") out_parts+=("$tmp/lead.wav")
cursor=$(soxi -s "$tmp/lead.wav") # samples
gap=$(soxi -s "$tmp/gap.wav")

script="$tmp/script.tsv"
: >"$script"
i=0
for turn in "${TURNS[@]}"; do
  i=$((i + 1))
  track=${turn%%|*}
  text=${turn#*|}
  if [ "$i" -gt 1 ]; then
    in_parts+=("$tmp/gap.wav") out_parts+=("$tmp/gap.wav")
    cursor=$((cursor + gap))
  fi
  speech="$tmp/turn$i.wav"
  quiet="$tmp/quiet$i.wav"
  synth "$track" "$text" "$speech"
  n=$(soxi -s "$speech")
  silence "${n}s" "$quiet"
  printf '%s\t%d\t%s\n' "$track" $((cursor * 1000 / RATE)) "$text" >>"$script"
  if [ "$track" = inbound ]; then
    in_parts+=("$speech") out_parts+=("$quiet")
  else
    in_parts+=("$quiet") out_parts+=("$speech")
  fi
  cursor=$((cursor + n))
done
in_parts+=("$tmp/tail.wav") out_parts+=("$tmp/tail.wav")

mkdir -p demo
sox -D -R "${in_parts[@]}" -e mu-law -b 8 demo/inbound.wav
sox -D -R "${out_parts[@]}" -e mu-law -b 8 demo/outbound.wav
cp "$script" demo/script.tsv

a=$(soxi -s demo/inbound.wav) b=$(soxi -s demo/outbound.wav)
if [ "$a" != "$b" ]; then
  echo "make_demo_audio: track lengths differ ($a vs $b samples)" >&2
  exit 1
fi
echo "wrote demo/inbound.wav demo/outbound.wav ($(soxi -d demo/inbound.wav), $a samples each) and demo/script.tsv (${#TURNS[@]} turns)"
