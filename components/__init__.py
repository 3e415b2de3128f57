"""UI factories and figure builders the pages, panels and displays are made of, and the ids,
labels, theme and URL state they share."""
