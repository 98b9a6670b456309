"""A fake ``picamera2.Picamera2`` for OV5647 (Pi camera v1), IMX477 (HQ) and IMX296 (global shutter)
sensors without their Bayer filter, on a Pi 4 (``vc4``) or a Pi 5 (``pisp``, two cameras).

Modelled on picamera2 (raspberrypi/picamera2: ``picamera2.py``, ``request.py``) for the calls
PyCam's driver makes, with the same names, argument forms, return shapes and errors:

* ``Picamera2.global_camera_info()``: one dict per camera (``Model``, ``Location``, ``Rotation``,
  ``Id``, ``Num``), sorted like the real one (by ``Id``, reverse; on a Pi 5 the two CSI ports are
  ``.../rp1/i2c@88000/...`` and ``.../rp1/i2c@80000/...``).  ``MODELS`` lists the sensor on each
  port (``ATTACHED`` how many are plugged in).
* ``Picamera2(camera_num=0, ...)``: no such camera -> ``IndexError`` (the real constructor
  indexes ``global_camera_info()``); camera already in use -> ``RuntimeError("Camera __init__
  sequence did not complete.")``.
* ``sensor_resolution``, ``sensor_format`` (OV5647 ``SGBRG10_CSI2P``, IMX477 ``SRGGB12_CSI2P``,
  IMX296 ``SRGGB10_CSI2P``), ``camera_properties`` (``Model``, ``UnitCellSize`` in nm),
  ``camera_controls`` (name -> ``(min, max, default)``; a Pi 5 also advertises ``HdrMode``).
* ``create_still_configuration(main={}, lores=None, raw={}, transform=None, colour_space=None,
  buffer_count=1, controls={}, display=None, encode=None, queue=True, sensor={}, use_case="still")``
  (bad stream keys -> ``ValueError``), ``configure(config)`` (adjusts unsupported raw formats and
  sizes like libcamera does), ``camera_configuration()`` (with ``stride``/``framesize``).
* ``set_controls(dict)``: unknown names -> ``RuntimeError("Control X is not advertised by
  libcamera")``; values are clamped to the limits (libcamera clamps silently); new values reach
  frames ``CONTROL_LATENCY`` frames later.
* ``start()``, ``stop()``, ``close()``; ``capture_request(wait=None, signal_function=None,
  flush=None)`` -> a request with ``get_metadata()`` (``ExposureTime`` quantised to the line time,
  ``AnalogueGain``, ``SensorTimestamp`` (ns, ``time.monotonic_ns()`` plus ``SKEW_NS[camera_num]``:
  inject a skew between two cameras), ``SensorBlackLevels`` (16-bit scale, like libcamera),
  ``FrameDuration``), ``make_array("raw")`` (uint8
  ``(rows, stride)``, the real raw packing, padding bytes filled), ``make_buffer``, ``release()``
  (twice -> ``RuntimeError`` like the real reference count).  Capturing from a stopped camera
  raises ``RuntimeError`` (the real call would block forever).

``PLATFORM = "pisp"`` imitates a Pi 5: unpacked raw is 16-bit left-aligned (``SGBRG10`` is
delivered as ``SGBRG16``, values << 6; IMX477 ``SRGGB16``, << 4) and packed requests become
compressed ``GBRG_PISP_COMP1``.  Pixel values: black level + scene radiance x exposure x gain,
scaled to the sensor's bit depth (the same scene gives 4x the DN on 12 bits), times
``TRANSMISSION[num]`` (a plume's exp(-tau), full-resolution array or scalar); ``LENS_CAP`` holds
the cameras taking dark frames (black level and read noise only).  ``TRUE_PIXELS``
keeps the last frame's sensor values so tests can check the unpacking exactly.
"""
from __future__ import annotations

import threading
import time

import numpy as np

SENSOR_SIZE = (2592, 1944)   # OV5647 (tests may shrink it)
CONTROL_LATENCY = 2
PLATFORM = "vc4"
ATTACHED = 1
MODELS = ["ov5647", "ov5647"]          # sensor on each camera port
SKEW_NS: dict[int, int] = {}           # camera Num -> offset added to its SensorTimestamp
TRANSMISSION: dict[int, "np.ndarray | float"] = {}  # camera Num -> what reaches the sensor (plume, filter)
LENS_CAP: set[int] = set()             # camera Nums that see no light (dark frames)
TRUE_PIXELS: list[np.ndarray] = []
INSTANCES: list["Picamera2"] = []
_in_use: set[int] = set()
_lock = threading.Lock()

#: per model: size, native format, bit depth, black level (DN of that depth), line time (us),
#: unit cell (nm), sensor modes and the controls of a real dump
SENSORS = {
    "ov5647": {"size": None, "format": "SGBRG10_CSI2P", "bits": 10, "black": 16, "line_us": 31.2,
               "cell": (1400, 1400), "modes": [(640, 480), (1296, 972), (1920, 1080), (2592, 1944)],
               "exposure": (130, 3066985, 20000), "gain": (1.0, 63.9375, 1.0),
               "frame": (63965, 3067365, 33333)},
    "imx477": {"size": (4056, 3040), "format": "SRGGB12_CSI2P", "bits": 12, "black": 256, "line_us": 21.4,
               "cell": (1550, 1550), "modes": [(1332, 990), (2028, 1080), (2028, 1520), (4056, 3040)],
               "exposure": (114, 694422939, 20000), "gain": (1.0, 22.2608, 1.0),
               "frame": (100000, 694434742, 100000)},
    "imx296": {"size": (1456, 1088), "format": "SRGGB10_CSI2P", "bits": 10, "black": 60, "line_us": 14.7,
               "cell": (3450, 3450), "modes": [(1456, 1088)],
               "exposure": (29, 15534385, 20000), "gain": (1.0, 251.188643, 1.0),
               "frame": (16562, 15534444, 16562)},
}


def reset() -> None:
    global PLATFORM, ATTACHED, SENSOR_SIZE
    PLATFORM, ATTACHED, SENSOR_SIZE = "vc4", 1, (2592, 1944)
    MODELS[:] = ["ov5647", "ov5647"]
    SKEW_NS.clear()
    TRANSMISSION.clear()
    LENS_CAP.clear()
    TRUE_PIXELS.clear()
    INSTANCES.clear()
    _in_use.clear()


def sensor(model: str) -> dict:
    info = dict(SENSORS[model])
    info["size"] = info["size"] or SENSOR_SIZE
    return info


def scene(width: int, height: int) -> np.ndarray:
    """Radiance in DN per second at gain 1: bright sky at the top, darker ground below."""
    y = np.linspace(1.0, 0.3, height, dtype=np.float32)[:, None]
    x = np.linspace(0.9, 1.1, width, dtype=np.float32)[None, :]
    return 6000.0 * y * x


class _Request:
    def __init__(self, cam: "Picamera2", meta: dict, make_raw, config: dict) -> None:
        self._cam, self._meta, self._make_raw, self.config = cam, meta, make_raw, config
        self._raw: np.ndarray | None = None
        self.ref_count = 1

    def _alive(self) -> None:
        if self.ref_count <= 0:
            raise RuntimeError("CompletedRequest used after release")

    def get_metadata(self) -> dict:
        self._alive()
        return dict(self._meta)

    def make_buffer(self, name: str) -> np.ndarray:
        self._alive()
        if self.config.get(name) is None:
            raise RuntimeError(f"Stream {name!r} is not defined")
        if name == "raw":
            if self._raw is None:  # pixels are made only when someone looks (cheap skipped frames)
                self._raw = self._make_raw()
            return self._raw.reshape(-1).copy()
        w, h = self.config[name]["size"]
        return np.zeros(h * w * 3, np.uint8)

    def make_array(self, name: str) -> np.ndarray:
        buf = self.make_buffer(name)
        w, h = self.config[name]["size"]
        if name == "raw":
            return buf.reshape(h, self.config["raw"]["stride"])
        return buf.reshape(h, w, 3)

    def release(self) -> None:
        self.ref_count -= 1
        if self.ref_count < 0:
            raise RuntimeError("CompletedRequest: lock now has negative ref_count")


def _pack(values: np.ndarray, fmt: str, stride: int, bits: int = 10) -> np.ndarray:
    h, w = values.shape
    out = np.full((h, stride), 0xAB, np.uint8)  # padding must never leak into pixels
    if fmt.endswith("_CSI2P") and bits != 10:
        raise RuntimeError(f"fake picamera2 packs only 10-bit CSI-2 data, not {fmt}")
    if fmt.endswith("_CSI2P"):
        v = values.reshape(h, w // 4, 4)
        grp = np.empty((h, w // 4, 5), np.uint8)
        grp[:, :, :4] = (v >> 2).astype(np.uint8)
        low = np.zeros((h, w // 4), np.uint16)
        for i in range(4):
            low |= (v[:, :, i] & 3) << (2 * i)
        grp[:, :, 4] = low.astype(np.uint8)
        out[:, : w * 5 // 4] = grp.reshape(h, -1)
    elif fmt.endswith("16"):
        out[:, : w * 2] = (values.astype("<u2") << (16 - bits)).view(np.uint8).reshape(h, -1)
    elif fmt.endswith(str(bits)):
        out[:, : w * 2] = values.astype("<u2").view(np.uint8).reshape(h, -1)
    else:
        raise RuntimeError(f"fake picamera2 cannot produce {fmt}")
    return out


def _stride(fmt: str, width: int) -> int:
    raw_bytes = width * 5 // 4 if fmt.endswith("_CSI2P") else width * 2
    return (raw_bytes + 31) // 32 * 32


def _camera_id(port: int, model: str) -> str:
    if PLATFORM == "pisp":  # Pi 5: the RP1 I2C bus of each CSI connector
        return f"/base/axi/pcie@120000/rp1/i2c@{88000 if port == 0 else 80000}/{model}@36"
    return f"/base/soc/i2c0mux/i2c@{port + 1}/{model}@36"


class Picamera2:
    @staticmethod
    def global_camera_info() -> list:
        cams = [{"Model": MODELS[i], "Location": 2, "Rotation": 0, "Id": _camera_id(i, MODELS[i]), "Num": i}
                for i in range(ATTACHED)]
        return sorted(cams, key=lambda cam: ("/usb" not in cam["Id"], cam["Id"]), reverse=True)

    def __init__(self, camera_num=0, verbose_console=None, tuning=None, allocator=None):
        camera_num = self.global_camera_info()[camera_num]["Num"]  # IndexError like the real one
        with _lock:
            if camera_num in _in_use:
                raise RuntimeError("Camera __init__ sequence did not complete.")
            _in_use.add(camera_num)
        self.camera_idx = camera_num
        self.model = MODELS[camera_num]
        self._sensor = info = sensor(self.model)
        self.is_open = True
        self.started = False
        self.sensor_resolution = info["size"]
        self.sensor_format = info["format"]
        self.camera_properties = {"Model": self.model, "UnitCellSize": info["cell"], "Location": 2, "Rotation": 0,
                                  "PixelArraySize": info["size"], "ColorFilterArrangement": 2,
                                  "PixelArrayActiveAreas": [(16, 6, *info["size"])]}
        self.camera_controls = {
            "AeEnable": (False, True, True), "AwbEnable": (False, True, None),
            "ExposureTime": info["exposure"], "AnalogueGain": info["gain"],
            "FrameDurationLimits": info["frame"], "NoiseReductionMode": (0, 4, 0),
            "ScalerCrop": ((0, 0, 64, 64), (0, 0, *info["size"]), (0, 0, *info["size"])),
            "Brightness": (-1.0, 1.0, 0.0), "Contrast": (0.0, 32.0, 1.0),
        }
        if PLATFORM == "pisp":
            self.camera_controls["HdrMode"] = (0, 4, 0)
        self.camera_config: dict | None = None
        self._values = {"ExposureTime": 20000, "AnalogueGain": 1.0, "AeEnable": True,
                        "FrameDurationLimits": (info["frame"][0], info["frame"][2])}
        self._pending: list[tuple[int, dict]] = []
        self._frame = 0
        self._rng = np.random.default_rng(1234 + camera_num)
        self._scene_cache: np.ndarray | None = None
        self._noise: list[np.ndarray] = []
        self._frames: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}  # rendered frames by exposure, noise...
        self.true_pixels: np.ndarray | None = None
        self.set_controls_calls: list[dict] = []
        INSTANCES.append(self)

    # -- configuration ---------------------------------------------------------------------
    @staticmethod
    def _stream(defaults: dict, updates: dict | None, ignore=()) -> dict | None:
        if updates is None:
            return None
        out = dict(defaults)
        for key, value in updates.items():
            if key in ("format", "size", "stride", "preserve_ar"):
                out[key] = str(value) if key == "format" else value
            elif key not in ignore:
                raise ValueError(f"Bad key {key!r}: valid stream configuration keys are "
                                 "('format', 'size', 'stride', 'preserve_ar')")
        return out

    def create_still_configuration(self, main={}, lores=None, raw={}, transform=None, colour_space=None,
                                   buffer_count=1, controls={}, display=None, encode=None, queue=True,
                                   sensor={}, use_case="still") -> dict:
        if not self.is_open:
            raise RuntimeError("Camera not opened")
        main = self._stream({"format": "BGR888", "size": self.sensor_resolution, "preserve_ar": True}, main)
        lores = self._stream({"format": "YUV420", "size": main["size"], "preserve_ar": False}, lores)
        raw = self._stream({"format": self.sensor_format, "size": main["size"]}, raw,
                           ("bit_depth", "crop_limits", "exposure_limits", "fps", "unpacked"))
        controls = {"NoiseReductionMode": 2, "FrameDurationLimits": (100, 1000000 * 1000)} | dict(controls)
        return {"use_case": use_case, "transform": transform, "colour_space": colour_space,
                "buffer_count": buffer_count, "queue": queue, "main": main, "lores": lores, "raw": raw,
                "controls": controls, "sensor": sensor, "display": display, "encode": encode}

    def configure(self, camera_config) -> None:
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        if not isinstance(camera_config, dict) or "main" not in camera_config:
            raise RuntimeError("bad camera configuration")
        config = {k: (dict(v) if isinstance(v, dict) else v) for k, v in camera_config.items()}
        raw = config.get("raw")
        if raw is not None:
            fmt = raw["format"]
            native = self.sensor_format[: -len("_CSI2P")]   # e.g. SGBRG10
            bayer = native[1:-len(str(self._sensor["bits"]))]  # e.g. GBRG
            if PLATFORM == "pisp":
                fmt = f"{bayer}_PISP_COMP1" if fmt.endswith("_CSI2P") or "COMP" in fmt else f"S{bayer}16"
            elif fmt not in (self.sensor_format, native):
                fmt = self.sensor_format
            size = tuple(raw["size"])
            full = self.sensor_resolution
            modes = [m for m in self._sensor["modes"] if m[0] <= full[0] and m[1] <= full[1]] or [full]
            covering = [m for m in modes if m[0] >= size[0] and m[1] >= size[1]]
            size = min(covering, key=lambda m: m[0] * m[1]) if covering else full
            raw.update(format=fmt, size=size, stride=_stride(fmt, size[0]),
                       framesize=_stride(fmt, size[0]) * size[1])
        self.camera_config = config
        self.set_controls({k: v for k, v in config.get("controls", {}).items() if k in self.camera_controls})
        self._apply_pending(10**9)
        self._scene_cache = None

    def camera_configuration(self) -> dict | None:
        return None if self.camera_config is None else {
            k: (dict(v) if isinstance(v, dict) else v) for k, v in self.camera_config.items()}

    # -- controls --------------------------------------------------------------------------
    def set_controls(self, controls: dict) -> None:
        clean = {}
        for name, value in controls.items():
            if name not in self.camera_controls:
                raise RuntimeError(f"Control {name} is not advertised by libcamera")
            lo, hi, _ = self.camera_controls[name]
            if name == "FrameDurationLimits":
                value = tuple(min(max(int(v), lo), hi) for v in value)
            elif isinstance(lo, (int, float)) and not isinstance(lo, bool):
                value = type(lo)(min(max(value, lo), hi))
            clean[name] = value
        self.set_controls_calls.append(dict(clean))
        self._pending.append((self._frame + CONTROL_LATENCY, clean))

    def _apply_pending(self, frame: int) -> None:
        keep = []
        for due, values in self._pending:
            if due <= frame:
                self._values.update(values)
            else:
                keep.append((due, values))
        self._pending = keep

    # -- running ---------------------------------------------------------------------------
    def start(self, config=None, show_preview=False) -> None:
        if self.camera_config is None:
            raise RuntimeError("Camera has not been configured")
        self.started = True

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        if not self.is_open:
            return
        self.stop()
        self.is_open = False
        self.camera_config = None
        with _lock:
            _in_use.discard(self.camera_idx)

    def capture_request(self, wait=None, signal_function=None, flush=None):
        if not self.started:
            raise RuntimeError("fake picamera2: capture_request on a stopped camera would block forever")
        if flush:
            self._frame += 1  # the frame already in flight began before the call: dropped
        self._frame += 1
        self._apply_pending(self._frame)
        raw_cfg = self.camera_config["raw"]
        w, h = raw_cfg["size"]
        if raw_cfg["format"].endswith("COMP1"):
            raise RuntimeError("fake picamera2 does not produce compressed frames")
        line_us = self._sensor["line_us"]
        exposure = int(int(self._values["ExposureTime"] / line_us) * line_us)
        gain = float(self._values["AnalogueGain"])
        frame_no = self._frame
        bits, black = self._sensor["bits"], self._sensor["black"]

        def make_raw() -> np.ndarray:
            if self._scene_cache is None or self._scene_cache.shape != (h, w):
                self._scene_cache = scene(w, h)
                self._noise = [self._rng.normal(0.0, 2.0, size=(h, w)).astype(np.float32) for _ in range(3)]
                self._frames.clear()
            capped = self.camera_idx in LENS_CAP
            plume = None if capped else TRANSMISSION.get(self.camera_idx)
            key = (exposure, gain, frame_no % len(self._noise), capped, raw_cfg["format"], raw_cfg["stride"])
            if plume is None and key in self._frames:  # the same frame again: no need to render it
                values, packed = self._frames[key]
                TRUE_PIXELS[:] = [values]
                self.true_pixels = values
                return packed
            scale = np.float32(2 ** (bits - 10))  # the same light fills more DN on a deeper ADC
            light = np.float32(0.0) if self.camera_idx in LENS_CAP else np.float32(exposure * 1e-6 * gain) * scale
            signal = self._scene_cache * light
            if self.camera_idx in TRANSMISSION and self.camera_idx not in LENS_CAP:
                signal *= np.asarray(TRANSMISSION[self.camera_idx], np.float32)
            signal += self._noise[frame_no % len(self._noise)] * scale
            signal += np.float32(black)
            values = np.clip(np.rint(signal), 0, (1 << bits) - 1).astype(np.uint16)
            TRUE_PIXELS[:] = [values]
            self.true_pixels = values
            packed = _pack(values, raw_cfg["format"], raw_cfg["stride"], bits)
            if plume is None:
                self._frames[key] = (values, packed)
                while len(self._frames) > 3:
                    self._frames.pop(next(iter(self._frames)))
            return packed

        meta = {"ExposureTime": exposure, "AnalogueGain": gain, "DigitalGain": 1.0,
                "SensorTimestamp": time.monotonic_ns() + int(SKEW_NS.get(self.camera_idx, 0)),
                "SensorBlackLevels": (black << (16 - bits),) * 4,
                "FrameDuration": max(exposure, self._values["FrameDurationLimits"][0]),
                "Lux": 400.0, "AeLocked": False}
        return _Request(self, meta, make_raw, self.camera_configuration())
