"""Offline text-to-speech with the eSpeak NG library shipped in the espeakng-loader wheel.

libespeak-ng is driven through ctypes (``espeak_Initialize`` in synchronous mode, a synthesis
callback collecting 16-bit PCM, ``espeak_SetVoiceByName`` / ``espeak_SetParameter`` /
``espeak_Synth``). Three properties of the library shape this module:

* it draws random numbers (its own generator, seeded from the clock at start-up, and libc's
  ``rand`` for some voice variants): both are re-seeded with a constant before each utterance;
* its output still depends on hidden state left by earlier utterances (the same word comes out
  a few samples longer or shorter on a second call, even after ``espeak_Terminate`` and a fresh
  ``espeak_Initialize``), but a fresh process replays exactly the same sequence;
* on some errors it calls ``exit()``.

So every synthesis runs in a short-lived child process (this file run as a script, which needs
only numpy and ctypes) that renders a whole job list in order: the clips are a pure function of
the job list, and a library failure cannot take the caller down. No network, no audio device.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 2  # espeak_AUDIO_OUTPUT
INITIALIZE_DONT_EXIT = 0x8000  # do not exit() when the voice data cannot be found
POS_CHARACTER = 1  # espeak_POSITION_TYPE
CHARS_UTF8 = 1  # espeak_Synth flags
PARAM_RATE, PARAM_PITCH = 1, 3  # espeak_PARAMETER
TIMEOUT_S = 120
RANDOM_SEED = 20231026  # any fixed value


@dataclass(frozen=True)
class SpeechJob:
    """One utterance: text, eSpeak voice name (e.g. "en", "en-us", "en+f3"), words per minute,
    and base pitch (0-100, eSpeak's default 50)."""

    text: str
    voice: str = "en"
    rate: int = 175
    pitch: int = 50


def synthesize(
    jobs: list[SpeechJob], library: Path, data_dir: Path
) -> tuple[list[np.ndarray], int]:
    """Render ``jobs`` in a child process; returns (int16 waveforms, sample rate).

    Raises:
        RuntimeError: the library failed (message from the child), or the child timed out.
    """
    request = json.dumps(
        {"library": str(library), "data": str(data_dir), "jobs": [asdict(j) for j in jobs]}
    )
    try:
        done = subprocess.run(
            [sys.executable, "-I", str(Path(__file__).resolve())],
            input=request.encode(),
            capture_output=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"eSpeak NG did not finish {len(jobs)} clips in {TIMEOUT_S} s") from None
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"eSpeak NG failed: {detail[-1] if detail else done.returncode}")
    return _unpack(done.stdout, len(jobs))


def _pack(waves: list[np.ndarray], sample_rate: int) -> bytes:
    header = struct.pack(f"<ii{len(waves)}i", sample_rate, len(waves), *(len(w) for w in waves))
    return header + b"".join(w.astype("<i2").tobytes() for w in waves)


def _unpack(blob: bytes, expected: int) -> tuple[list[np.ndarray], int]:
    sample_rate, count = struct.unpack_from("<ii", blob)
    if count != expected:
        raise RuntimeError(f"eSpeak NG returned {count} clips for {expected} requests")
    lengths = struct.unpack_from(f"<{count}i", blob, 8)
    samples = np.frombuffer(blob, dtype="<i2", offset=8 + 4 * count)
    bounds = np.cumsum((0, *lengths))
    if bounds[-1] != len(samples):
        raise RuntimeError("eSpeak NG output is truncated")
    return [samples[a:b].copy() for a, b in itertools.pairwise(bounds)], sample_rate


def _reseeders(lib: ctypes.CDLL) -> Callable[[], None]:
    """Fix the random sources eSpeak NG draws from (its own generator, seeded from the clock
    at start-up, and libc's rand used by some voice variants) before each utterance."""
    libc = ctypes.CDLL(None)
    seed_espeak = getattr(lib, "espeak_ng_SetRandSeed", None)
    if seed_espeak is not None:
        seed_espeak.argtypes = [ctypes.c_long]

    def reseed() -> None:
        if seed_espeak is not None:
            seed_espeak(RANDOM_SEED)
        libc.srand(RANDOM_SEED)

    return reseed


def _render(library: str, data_dir: str, jobs: list[dict[str, object]]) -> bytes:
    """Child side: initialise the library once and synthesise every job in order."""
    lib = ctypes.CDLL(library)
    lib.espeak_Initialize.restype = ctypes.c_int
    sample_rate = lib.espeak_Initialize(
        AUDIO_OUTPUT_SYNCHRONOUS, 0, data_dir.encode(), INITIALIZE_DONT_EXIT
    )
    if sample_rate <= 0:
        raise RuntimeError(f"espeak_Initialize failed with voice data {data_dir}")
    chunks: list[np.ndarray] = []
    callback_type = ctypes.CFUNCTYPE(
        ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
    )

    def collect(wav: ctypes._Pointer, count: int, events: int) -> int:
        if count > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0  # 0: continue synthesis

    callback = callback_type(collect)  # kept alive for the library's whole use
    lib.espeak_SetSynthCallback(callback)
    reseed = _reseeders(lib)
    waves = []
    for job in jobs:
        reseed()
        if lib.espeak_SetVoiceByName(str(job["voice"]).encode()) != 0:
            raise RuntimeError(f"eSpeak NG has no voice {job['voice']!r}")
        lib.espeak_SetParameter(PARAM_RATE, int(str(job["rate"])), 0)
        lib.espeak_SetParameter(PARAM_PITCH, int(str(job["pitch"])), 0)
        text = str(job["text"]).encode() + b"\0"
        chunks.clear()
        status = lib.espeak_Synth(text, len(text), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
        if status != 0:
            raise RuntimeError(f"espeak_Synth returned {status} for {job['text']!r}")
        waves.append(np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16))
    lib.espeak_Terminate()
    return _pack(waves, sample_rate)


if __name__ == "__main__":
    spec = json.loads(sys.stdin.buffer.read())
    sys.stdout.buffer.write(_render(spec["library"], spec["data"], spec["jobs"]))
