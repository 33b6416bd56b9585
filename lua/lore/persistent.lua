-- persistent.lua: persistent actors (placeholder until the journal lands).
return function(core, R, ctx_methods)
  local P = {}
  function P.start() error("persistent actors are not available yet") end
  function P.receive() error("persistent actors are not available yet") end
  function P.system() end
  function P.restart() end
  function P.stopped() end
  function P.stop_requested(rec) R.stop_actor(rec) end
  return P
end
