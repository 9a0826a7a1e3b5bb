-- Argo CD resource health check for FineTuneJob (finetune.dev/v1alpha1).
-- Argo CD sets the global `obj` (the live object) and reads the returned table's `status` and `message`.
--   Healthy      the Complete condition is True (or phase Succeeded)
--   Degraded     the job Failed or was Cancelled (message: status.message, else the Failed condition's),
--                or is Blocked on something the user or the world must fix (a Secret, a mapping, a budget)
--   Suspended    spec.suspend is true (validated and planned, or a started run stopped at a checkpoint)
--   Progressing  anything else: no status yet, validating, planned, queued, running, publishing
-- Conditions are the truth; `phase` is a summary, used only where a condition is missing.
local hs = {}

local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function nonempty(text)
  return text ~= nil and text ~= ""
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the finetune-operator to pick up the FineTuneJob"
  return hs
end

local phase = status.phase or "Pending"
local complete = condition(status, "Complete")
local failed = condition(status, "Failed")

if (complete ~= nil and complete.status == "True") or phase == "Succeeded" then
  hs.status = "Healthy"
  if status.outputs ~= nil and nonempty(status.outputs.model) then
    hs.message = "Fine-tuned model: " .. status.outputs.model
  elseif complete ~= nil and nonempty(complete.message) then
    hs.message = complete.message
  else
    hs.message = "Fine-tuning complete"
  end
  return hs
end

if phase == "Failed" or phase == "Cancelled" or (failed ~= nil and failed.status == "True") then
  hs.status = "Degraded"
  if nonempty(status.message) then
    hs.message = status.message
  elseif failed ~= nil and nonempty(failed.message) then
    hs.message = failed.message
  elseif failed ~= nil and nonempty(failed.reason) then
    hs.message = failed.reason
  else
    hs.message = "FineTuneJob " .. phase
  end
  return hs
end

local blocked = condition(status, "Blocked")
if phase == "Blocked" or (blocked ~= nil and blocked.status == "True") then
  hs.status = "Degraded"
  local text = "Blocked"
  if blocked ~= nil and nonempty(blocked.reason) then
    text = text .. " (" .. blocked.reason .. ")"
  end
  if blocked ~= nil and nonempty(blocked.message) then
    text = text .. ": " .. blocked.message
  elseif nonempty(status.message) then
    text = text .. ": " .. status.message
  end
  hs.message = text
  return hs
end

local suspended = (obj.spec ~= nil and obj.spec.suspend == true) or phase == "Suspended"
if suspended or phase == "Planned" then
  hs.status = suspended and "Suspended" or "Progressing"
  local text = "Suspended: set spec.suspend to false to launch"
  if status.plan ~= nil then
    text = "Planned " .. (status.plan.target or "?")
    if status.plan.estimatedCostUSD ~= nil then
      text = text .. string.format(", estimated $%.2f", status.plan.estimatedCostUSD)
    end
    if status.plan.estimatedHours ~= nil then
      text = text .. string.format(" over %.1f h", status.plan.estimatedHours)
    end
    if suspended then
      text = text .. "; suspended: set spec.suspend to false to launch"
    end
  end
  hs.message = text
  return hs
end

hs.status = "Progressing"
local text = phase
if status.progress ~= nil and nonempty(status.progress.percent) then
  text = text .. " " .. status.progress.percent
end
if nonempty(status.message) then
  text = text .. ": " .. status.message
end
hs.message = text
return hs
