"""Sources of one bed's EEG behind one interface: EDF replay and LSL inlet (see ``base.Source``)."""
