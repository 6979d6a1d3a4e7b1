"""Choosing circuits and measuring them: selection rules over scored graphs (:mod:`.select`),
faithfulness of a circuit with everything else ablated (:mod:`.faithfulness`) and the search
for the smallest faithful circuit (:mod:`.minimal`)."""
