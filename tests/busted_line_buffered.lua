-- busted_line_buffered.lua: a busted --helper that makes busted's own stdout line-buffered
-- (only this process: the programs the specs start keep their own buffering), so that its
-- summary is on the terminal even if the process then dies without flushing (.ci/run's
-- ASan pass: LeakSanitizer's tracer can fail at exit).
io.stdout:setvbuf("line")
