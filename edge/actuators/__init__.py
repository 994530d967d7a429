"""The site's actuators: the link to the valves (serial, Modbus TCP, dry run, or the in-process
reference PLC of the simulated belt) and the nozzle bank from calibration, for the live path's
dispatcher, `beltcam bridge` and the panel's test fire."""
