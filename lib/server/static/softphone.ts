/// <reference lib="dom" />
/**
 * The browser softphone (served as `/assets/server/static/softphone.ts`): on a live call's
 * page, this tab can take the call's laptop leg. The microphone
 * (`getUserMedia` with the browser's echo cancellation, noise suppression
 * and gain control) goes through the capture worklet
 * (`softphone_worklet.ts`: 8 kHz 16-bit PCM, 20 ms frames) into one
 * WebSocket, `/api/calls/<CallSid>/softphone`, opened with the dashboard
 * session; the call's audio comes back on it as 8 kHz PCM and is played
 * through Web Audio on the chosen speaker (`setSinkId` where the browser
 * has it). Counters for people and tests are on the panel's `data-…`:
 * `framesSent`, `framesReceived`, `samplesScheduled`, `echoCancellation`,
 * `state` (`idle`, `starting`, `live`, `refused`, `left`, `ended`).
 *
 * @module
 */

/** An AudioContext that can pick its speaker (`setSinkId`: not in every browser, nor in the DOM typings). */
type SinkContext = AudioContext & { setSinkId(sinkId: string): Promise<void> };

const CALL_RATE = 8000;
/** Playback starts this far ahead of now: room for network jitter. */
const JITTER_S = 0.08;
/** Queued playback past this is dropped (a stalled tab must not talk half a second late). */
const MAX_AHEAD_S = 0.5;

const panel = document.getElementById("softphone");
const callSid = panel?.dataset.call;
if (panel && callSid) mount(panel, callSid);
const dialOut = document.getElementById("dial-out");
if (dialOut) mountDialOut(dialOut);

/**
 * The dashboard's "Call a number" form: `POST /api/calls`, then the call's page once the call is
 * answered and live (its laptop leg is taken there).
 */
function mountDialOut(panel: HTMLElement) {
  panel.hidden = false;
  const form = document.createElement("form");
  const number = element("input") as HTMLInputElement;
  number.type = "tel";
  number.name = "to";
  number.placeholder = "+15551234567";
  number.required = true;
  number.setAttribute("aria-label", "Number to call");
  const call = element("button", "Call", "primary");
  const status = element("span", "", "muted softphone-status");
  status.setAttribute("role", "status");
  form.append(element("strong", "Call a number "), number, document.createTextNode(" "), call);
  panel.append(form, status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    call.setAttribute("disabled", "");
    status.textContent = "Calling…";
    try {
      const response = await fetch("/api/calls", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ to: number.value }),
      });
      const answer = await response.json();
      if (!response.ok) throw new Error(answer.error ?? `HTTP ${response.status}`);
      const page = `/calls/${encodeURIComponent(answer.callSid)}`;
      status.textContent = `Ringing ${number.value} (${answer.callSid})…`;
      // The call's page exists once Twilio asked for its TwiML (it was answered).
      for (let i = 0; i < 240; i++) {
        const probe = await fetch(page);
        await probe.body?.cancel();
        if (probe.ok) {
          location.assign(page);
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      throw new Error("the call was not answered within 2 minutes");
    } catch (error) {
      status.textContent = `Could not call: ${(error as Error).message}`;
    } finally {
      call.removeAttribute("disabled");
    }
  });
}

/**
 * A new element with text.
 */
function element(tag: string, text?: string, className?: string): HTMLElement {
  const el = document.createElement(tag);
  if (text !== undefined) el.textContent = text;
  if (className) el.className = className;
  return el;
}

/**
 * Builds the panel and its controls.
 */
function mount(panel: HTMLElement, callSid: string) {
  panel.hidden = false;
  const heading = element("strong", "Talk from this browser");
  const status = element("span", "", "muted softphone-status");
  status.setAttribute("role", "status");
  const mics = element("select") as HTMLSelectElement;
  mics.setAttribute("aria-label", "Microphone");
  const speakers = element("select") as HTMLSelectElement;
  speakers.setAttribute("aria-label", "Speaker");
  const take = element("button", "Take the laptop leg", "primary");
  const mute = element("button", "Mute");
  const leave = element("button", "Leave");
  const meter = element("meter") as HTMLMeterElement;
  meter.min = -60;
  meter.max = 0;
  meter.low = -40;
  meter.value = -60;
  meter.setAttribute("aria-label", "Microphone level");
  mute.hidden = leave.hidden = true;
  const label = (text: string, control: HTMLElement) => {
    const l = element("label", text + " ");
    l.append(control);
    return l;
  };
  panel.append(
    heading,
    label("Microphone", mics),
    label("Speaker", speakers),
    label("Level", meter),
    take,
    mute,
    leave,
    status,
  );
  const show = (state: string, text: string) => {
    panel.dataset.state = state;
    status.textContent = text;
  };
  show("idle", "The call's audio plays here and your microphone goes into the call.");

  if (!globalThis.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
    take.setAttribute("disabled", "");
    show(
      "idle",
      "The microphone needs a secure page: open the dashboard on http://localhost:<port> " +
        "or on the server's https public URL.",
    );
    return;
  }
  const sinkCapable = "setSinkId" in AudioContext.prototype;
  if (!sinkCapable) speakers.setAttribute("disabled", "");

  /** Fills the pickers (labels appear once the microphone is allowed). */
  const listDevices = async () => {
    const devices = await navigator.mediaDevices.enumerateDevices();
    for (
      const [select, kind] of ([[mics, "audioinput"], [
        speakers,
        "audiooutput",
      ]] as const)
    ) {
      const chosen = select.value;
      select.replaceChildren(element("option", "Default"));
      (select.firstChild as HTMLOptionElement).value = "";
      let n = 0;
      for (const d of devices.filter((d) => d.kind === kind && d.deviceId !== "default")) {
        const name = d.label || `${kind === "audioinput" ? "Microphone" : "Speaker"} ${++n}`;
        const option = element("option", name) as HTMLOptionElement;
        option.value = d.deviceId;
        select.append(option);
      }
      select.value = chosen;
      if (select.value !== chosen) select.value = "";
    }
  };
  listDevices().catch(() => {});
  navigator.mediaDevices.addEventListener("devicechange", () => listDevices().catch(() => {}));

  let leg: {
    ws: WebSocket;
    context: AudioContext;
    stream: MediaStream;
    source: MediaStreamAudioSourceNode;
    capture: AudioWorkletNode;
  } | null = null;
  let muted = false;
  let framesSent = 0;
  let framesReceived = 0;
  let samplesScheduled = 0;
  let playAt = 0;
  const count = () => {
    panel.dataset.framesSent = String(framesSent);
    panel.dataset.framesReceived = String(framesReceived);
    panel.dataset.samplesScheduled = String(samplesScheduled);
  };

  const openMicrophone = async (deviceId: string) => {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: {
        ...(deviceId ? { deviceId: { exact: deviceId } } : {}),
        echoCancellation: true,
        noiseSuppression: true,
        autoGainControl: true,
        channelCount: 1,
      },
    });
    const settings = stream.getAudioTracks()[0]?.getSettings() ?? {};
    panel.dataset.echoCancellation = String(settings.echoCancellation === true);
    return stream;
  };

  const stop = () => {
    if (!leg) return;
    const { ws, context, stream } = leg;
    leg = null;
    for (const track of stream.getTracks()) track.stop();
    context.close().catch(() => {});
    if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) {
      ws.close(1000, "left");
    }
    take.hidden = false;
    mute.hidden = leave.hidden = true;
    meter.value = -60;
  };

  take.addEventListener("click", async () => {
    if (leg) return;
    take.setAttribute("disabled", "");
    show("starting", "Asking for the microphone…");
    try {
      const stream = await openMicrophone(mics.value);
      await listDevices();
      const context = new AudioContext({ latencyHint: "interactive" });
      if (sinkCapable && speakers.value) {
        await (context as SinkContext).setSinkId(speakers.value);
      }
      await context.audioWorklet.addModule("/assets/server/static/softphone_worklet.ts");
      const source = context.createMediaStreamSource(stream);
      const capture = new AudioWorkletNode(context, "softphone-capture");
      source.connect(capture);
      // Its output is silence; connected so the graph pulls it.
      capture.connect(context.destination);
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      const ws = new WebSocket(
        `${scheme}//${location.host}/api/calls/${encodeURIComponent(callSid)}/softphone`,
      );
      ws.binaryType = "arraybuffer";
      leg = { ws, context, stream, source, capture };
      let ready = false;
      capture.port.onmessage = (event) => {
        const { frame, level } = event.data;
        meter.value = Math.max(-60, 20 * Math.log10(level || 1e-6));
        if (!ready || muted || ws.readyState !== WebSocket.OPEN) return;
        ws.send(frame.buffer);
        framesSent++;
        count();
      };
      ws.onmessage = (event) => {
        if (typeof event.data === "string") {
          const message = JSON.parse(event.data);
          if (message.type === "ready") {
            ready = true;
            take.hidden = true;
            mute.hidden = leave.hidden = false;
            show("live", "On the call: the laptop leg is this browser.");
          } else if (message.type === "refused") {
            show("refused", `Refused: ${message.message}.`);
          } else if (message.type === "ended") {
            show("ended", "The call has ended.");
          }
          return;
        }
        play(context, new Int16Array(event.data));
      };
      ws.onclose = (event) => {
        if (panel.dataset.state === "live") {
          show("left", `Left the call's laptop leg (${event.code}).`);
        } else if (panel.dataset.state === "starting") {
          show("refused", `The softphone could not connect (${event.code} ${event.reason}).`);
        }
        if (leg?.ws === ws) stop();
        count();
      };
    } catch (error) {
      stop();
      show("idle", `Could not start: ${(error as Error).message}`);
    } finally {
      take.removeAttribute("disabled");
    }
  });

  /**
   * Schedules one frame of the call's audio.
   */
  function play(context: AudioContext, pcm: Int16Array) {
    if (pcm.length === 0) return;
    const buffer = context.createBuffer(1, pcm.length, CALL_RATE);
    const samples = buffer.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 32768;
    const now = context.currentTime;
    if (playAt < now || playAt > now + MAX_AHEAD_S) playAt = now + JITTER_S;
    const node = context.createBufferSource();
    node.buffer = buffer;
    node.connect(context.destination);
    node.start(playAt);
    playAt += buffer.duration;
    framesReceived++;
    samplesScheduled += pcm.length;
    count();
  }

  mute.addEventListener("click", () => {
    muted = !muted;
    mute.textContent = muted ? "Unmute" : "Mute";
    mute.setAttribute("aria-pressed", String(muted));
  });
  leave.addEventListener("click", () => {
    stop();
    show("left", "Left the call's laptop leg; the call goes on.");
    count();
  });
  mics.addEventListener("change", async () => {
    if (!leg) return;
    const current = leg;
    const stream = await openMicrophone(mics.value);
    for (const track of current.stream.getTracks()) track.stop();
    current.source.disconnect();
    current.stream = stream;
    current.source = current.context.createMediaStreamSource(stream);
    current.source.connect(current.capture);
  });
  speakers.addEventListener("change", () => {
    if (leg && sinkCapable) (leg.context as SinkContext).setSinkId(speakers.value);
  });
}
