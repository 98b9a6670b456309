"""Small dialogs: the station address editor."""
from __future__ import annotations

import dataclasses
import tkinter as tk
from tkinter import ttk

from pycam.config import Config, ConfigError, validate


def config_with_address(config: Config, host: str, port: str) -> Config:
    """A copy of ``config`` with another master host and client port, validated like the file."""
    data = {section: dict(values) for section, values in config.values.items()}
    try:
        port_number = int(port)
    except ValueError:
        raise ConfigError(f"[network] client_port = {port!r}: must be a whole number") from None
    data["network"]["master_host"] = host.strip()
    data["network"]["client_port"] = port_number
    # values are already typed; turn paths back into text so validate() accepts them
    for section in data.values():
        for key, value in list(section.items()):
            if value is None:
                section.pop(key)
            elif hasattr(value, "__fspath__"):
                section[key] = str(value)
    checked = validate(data, config.path)
    return dataclasses.replace(checked, path=config.path)


class AddressDialog(tk.Toplevel):
    """Edit the master's address and client port; ``result`` is the new Config or None."""

    def __init__(self, master, config: Config) -> None:
        super().__init__(master)
        self.title("Station address")
        self.transient(master)
        self.config_in = config
        self.result: Config | None = None
        net = config["network"]
        frame = ttk.Frame(self, padding=8)
        frame.pack(fill="both", expand=True)
        ttk.Label(frame, text="Master host").grid(row=0, column=0, sticky="w")
        self.host = tk.StringVar(value=net["master_host"])
        ttk.Entry(frame, textvariable=self.host, width=24).grid(row=0, column=1)
        ttk.Label(frame, text="Client port").grid(row=1, column=0, sticky="w")
        self.port = tk.StringVar(value=str(net["client_port"]))
        ttk.Entry(frame, textvariable=self.port, width=8).grid(row=1, column=1, sticky="w")
        ttk.Label(frame, text="The shared secret stays the one in the configuration file.",
                  foreground="#555555").grid(row=2, column=0, columnspan=2, sticky="w", pady=4)
        self.error = tk.StringVar(value="")
        ttk.Label(frame, textvariable=self.error, foreground="#c02020", wraplength=320).grid(
            row=3, column=0, columnspan=2, sticky="w")
        buttons = ttk.Frame(frame)
        buttons.grid(row=4, column=0, columnspan=2, pady=4)
        ttk.Button(buttons, text="Connect", command=self.accept).pack(side="left", padx=4)
        ttk.Button(buttons, text="Cancel", command=self.destroy).pack(side="left", padx=4)
        self.bind("<Return>", lambda _e: self.accept())
        self.bind("<Escape>", lambda _e: self.destroy())

    def accept(self) -> None:
        try:
            self.result = config_with_address(self.config_in, self.host.get(), self.port.get())
        except ConfigError as exc:
            self.error.set(str(exc))
            return
        self.destroy()
