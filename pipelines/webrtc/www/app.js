// costream talk-back page. SPDX-License-Identifier: LGPL-2.1-or-later
//
// Watches the producer's stream from the costream-webrtc server and talks back. Signalling is
// plain text over a WebSocket, one message per frame, first line the type (see
// costream-webrtc.cpp). Every second the page sends a summary of its getStats() to the server.
'use strict';

const params = new URLSearchParams(location.search);
const streamName = params.get('stream') || '';
// a kiosk link's login (the server's --make-token), passed on to the API and the WebSocket
const token = params.get('token') || '';
let mayTalk = true;
const toneHz = Number(params.get('tone') || 0);
const processing = params.get('processing') !== '0';
let talking = params.get('talk') === '1';

const video = document.getElementById('video');
const talkButton = document.getElementById('talk');
const soundButton = document.getElementById('sound');
const stateText = document.getElementById('state');
const talkersList = document.getElementById('talkers');
const statsText = document.getElementById('stats');
const streamsList = document.getElementById('streams');

let me = null;
let pc = null;
let talkTrack = null;
let audioContext = null;
const remote = new MediaStream();
const talkers = new Map(); // viewer id -> {active, level}

function send(type, ...lines) {
  if (ws.readyState === WebSocket.OPEN) ws.send([type, ...lines].join('\n'));
}

// The microphone, or a test tone when ?tone=HZ is given.
async function makeTalkTrack() {
  if (toneHz > 0) {
    audioContext = new AudioContext();
    const osc = audioContext.createOscillator();
    osc.frequency.value = toneHz;
    const gain = audioContext.createGain();
    gain.gain.value = 0.25;
    const dest = audioContext.createMediaStreamDestination();
    osc.connect(gain).connect(dest);
    osc.start();
    return dest.stream.getAudioTracks()[0];
  }
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: processing, noiseSuppression: processing,
             autoGainControl: processing },
  });
  return stream.getAudioTracks()[0];
}

function showTalking() {
  talkButton.textContent = talking ? 'Stop talking' : 'Talk';
  talkButton.classList.toggle('on', talking);
  if (talkTrack) talkTrack.enabled = talking;
}

function showTalkers() {
  talkersList.replaceChildren();
  for (const [id, t] of [...talkers.entries()].sort((a, b) => a[0] - b[0])) {
    const li = document.createElement('li');
    li.className = t.active ? 'active' : '';
    const dot = document.createElement('span');
    dot.className = 'dot';
    li.append(dot, `viewer ${id}${id === me ? ' (you)' : ''}: ` +
                    (t.active ? `talking, ${t.level.toFixed(0)} dBov` : 'quiet'));
    talkersList.append(li);
  }
}

async function onOffer(sdp) {
  pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
  pc.ontrack = (e) => {
    remote.addTrack(e.track);
    video.srcObject = remote;
  };
  pc.onicecandidate = (e) => {
    if (e.candidate && e.candidate.candidate)
      send('ice', String(e.candidate.sdpMLineIndex), e.candidate.candidate);
  };
  pc.onconnectionstatechange = () => { stateText.textContent = pc.connectionState; };
  await pc.setRemoteDescription({ type: 'offer', sdp });
  // the producer's audio m-line carries the talk-back the other way
  const audio = pc.getTransceivers().find((t) => t.receiver.track.kind === 'audio');
  try {
    if (!mayTalk) throw new DOMException('this login may watch, not talk', 'NotAllowedError');
    talkTrack = await makeTalkTrack();
    await audio.sender.replaceTrack(talkTrack);
    audio.direction = 'sendrecv';
    talkButton.disabled = false;
  } catch (err) {
    stateText.textContent = mayTalk ? `no microphone (${err.name}): watching only`
                                    : 'this login may watch, not talk';
    audio.direction = 'recvonly';
  }
  showTalking();
  const answer = await pc.createAnswer();
  await pc.setLocalDescription(answer);
  send('answer', answer.sdp);
  setInterval(reportStats, 1000);
}

async function reportStats() {
  const report = await pc.getStats();
  let audioPackets = 0, audioSamples = 0, videoPackets = 0, framesDecoded = 0, talkPackets = 0;
  report.forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'audio') {
      audioPackets = s.packetsReceived;
      audioSamples = s.totalSamplesReceived || 0;
    }
    if (s.type === 'inbound-rtp' && s.kind === 'video') {
      videoPackets = s.packetsReceived;
      framesDecoded = s.framesDecoded;
    }
    if (s.type === 'outbound-rtp' && s.kind === 'audio') talkPackets = s.packetsSent;
  });
  const line = `connection=${pc.connectionState} ` +
               `audio-packets=${audioPackets} audio-samples=${audioSamples} ` +
               `video-packets=${videoPackets} ` +
               `frames-decoded=${framesDecoded} talk-packets-sent=${talkPackets} ` +
               `talking-shown=${[...talkers.values()].filter((t) => t.active).length}` +
               (toneHz > 0 ? ` tone=${toneHz}` : '');
  statsText.textContent = line;
  send('stats', line);
}

// The server's streams (GET /api/streams), each a link to this page on it; the one watched is
// marked. Listed once at load.
async function listStreams() {
  try {
    const api = '/api/streams' + (token ? `?token=${encodeURIComponent(token)}` : '');
    const streams = await (await fetch(api)).json();
    const names = Object.keys(streams);
    const current = streamName || names[0];
    streamsList.replaceChildren();
    for (const name of names) {
      const li = document.createElement('li');
      const a = document.createElement('a');
      const p = new URLSearchParams(location.search);
      p.set('stream', name);
      a.href = `?${p}`;
      a.textContent = name;
      const producer = streams[name].producers[0] || {};
      li.append(a, ` ${producer.kind || ''} ${producer.state || ''}` +
                   (name === current ? ' (watching)' : ''));
      streamsList.append(li);
    }
  } catch (err) {
    streamsList.textContent = `cannot list the streams (${err})`;
  }
}
listStreams();

const wsParams = new URLSearchParams();
if (streamName) wsParams.set('stream', streamName);
if (token) wsParams.set('token', token);
const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws` +
                         (wsParams.toString() ? `?${wsParams}` : ''));
ws.onclose = (e) => {
  stateText.textContent = e.reason === 'full'             ? 'the server has all the viewers it takes'
                          : e.reason === 'no such stream' ? `no stream named ${streamName}`
                                                          : 'disconnected';
};
ws.onmessage = async (e) => {
  const [type, ...rest] = e.data.split('\n');
  if (type === 'hello') {
    me = Number(rest[0]);
    mayTalk = rest[1] !== 'watch';
    stateText.textContent = `viewer ${me}: negotiating…`;
  } else if (type === 'offer') {
    await onOffer(rest.join('\n'));
  } else if (type === 'ice') {
    if (pc) await pc.addIceCandidate({ sdpMLineIndex: Number(rest[0]), candidate: rest[1] });
  } else if (type === 'talker') {
    const [id, active, level] = rest[0].split(' ');
    talkers.set(Number(id), { active: active === '1', level: Number(level) });
    showTalkers();
  } else if (type === 'left') {
    talkers.delete(Number(rest[0]));
    showTalkers();
  }
};

talkButton.onclick = async () => {
  talking = !talking;
  if (audioContext) await audioContext.resume();
  showTalking();
};
soundButton.onclick = () => {
  video.muted = !video.muted;
  soundButton.textContent = video.muted ? 'Sound on' : 'Sound off';
};
