"""The simulated belt: its world (`world`), renderer (`render`), the simulated camera behind the same
`FrameSource` interface as real ones (`camera`), the calibration its installation has, written as
the site's calibration file (`calibration_truth`), simulated datasets (`dataset`) and the
ground-truth judge of valve openings (`judge`). Only a simulator knows the truth: nothing here runs
on a real site."""
