-- Schema version 7: bundles stay in their rows.
--
-- A bundle (16 events, about 3.5 kB once compressed) stays in its row,
-- compressed, rather than going to TOAST in chunks of 2 kB, whose pages
-- fill a chunk at a time and keep a fifth of their room unused. It
-- applies to the rows written from now on.
ALTER TABLE event_bundles SET (toast_tuple_target = 8160);
