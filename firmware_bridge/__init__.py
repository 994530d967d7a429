"""The firmware bridge: timed removal commands from the agent to air-jet valves or robots.

An independent library (pydantic, pyserial, pymodbus, sockets): `messages` is the contract,
`planner` turns tracked objects into timed commands, the transports carry them over real protocols
(`PROTOCOL.md` specifies the serial one), and the simulators stand in for the valves.
"""
