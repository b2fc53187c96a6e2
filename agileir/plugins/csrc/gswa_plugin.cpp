/*
 * TensorRT IPluginV3 wrapper of the fused GSWA kernel (gswa_kernel.cu). See gswa_plugin.h and docs/plugin.md.
 *
 * Two builds of this file (agileir/plugins/CMakeLists.txt):
 *   libagileir_trt_plugins.so         exports getCreators / setLoggerFinder (C linkage): for
 *                                     IPluginRegistry::loadLibrary (Python load_library, trtexec
 *                                     --dynamicPlugins, plugins serialized into version-compatible engines).
 *   libagileir_trt_plugins_static.so  -DAGILEIR_GSWA_STATIC_REGISTRATION: registers the creator from a static
 *                                     initializer when the library is dlopen-ed (trtexec --staticPlugins,
 *                                     ctypes.CDLL). It does not export getCreators: loadLibrary refuses creators
 *                                     that are already registered, so one library cannot serve both ways.
 */
#include "gswa_plugin.h"
#include "gswa_kernel.h"
#include "NvInferVersion.h"

#include <atomic>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>

#if defined(AGILEIR_TRT_RTX) && !defined(_WIN32)
#include <dlfcn.h>
#include <link.h>
#endif

#if defined(_WIN32)
#define AGILEIR_EXPORT __declspec(dllexport)
#else
#define AGILEIR_EXPORT __attribute__((visibility("default")))
#endif

using namespace nvinfer1;

namespace agileir
{
#if NV_TENSORRT_MAJOR >= 10 // IPluginV3; TensorRT 8.x builds gswa_plugin_v2.cpp (IPluginV2DynamicExt) instead
namespace
{

std::atomic<ILoggerFinder*> gLoggerFinder{nullptr};

void logMsg(ILogger::Severity severity, std::string const& msg) noexcept
{
    try
    {
        ILoggerFinder* finder = gLoggerFinder.load();
        ILogger* logger = finder != nullptr ? finder->findLogger() : nullptr;
        std::string const text = std::string("[agileir::GroupShiftedWindowAttention] ") + msg;
        if (logger != nullptr)
        {
            logger->log(severity, text.c_str());
        }
        else if (severity <= ILogger::Severity::kWARNING)
        {
            std::fprintf(stderr, "%s\n", text.c_str());
        }
    }
    catch (...)
    {
    }
}

void logError(std::string const& msg) noexcept
{
    logMsg(ILogger::Severity::kERROR, msg);
}

enum IOIndex : int32_t
{
    kQKV = 0,
    kDW_WEIGHT = 1,
    kDW_BIAS = 2,
    kBIAS_TABLE = 3,
    kNB_INPUTS = 4,
    kOUTPUT = 4,
    kNB_OUTPUTS = 1
};

bool readInt(PluginField const& f, int32_t* out)
{
    if (f.data == nullptr || f.length < 1)
        return false;
    switch (f.type)
    {
    case PluginFieldType::kINT32: *out = *static_cast<int32_t const*>(f.data); return true;
    case PluginFieldType::kINT64: *out = static_cast<int32_t>(*static_cast<int64_t const*>(f.data)); return true;
    case PluginFieldType::kINT16: *out = *static_cast<int16_t const*>(f.data); return true;
    case PluginFieldType::kINT8: *out = *static_cast<int8_t const*>(f.data); return true;
    default: return false;
    }
}

bool readFloat(PluginField const& f, float* out)
{
    if (f.data == nullptr || f.length < 1)
        return false;
    switch (f.type)
    {
    case PluginFieldType::kFLOAT32: *out = *static_cast<float const*>(f.data); return true;
    case PluginFieldType::kFLOAT64: *out = static_cast<float>(*static_cast<double const*>(f.data)); return true;
    default: return false;
    }
}

// Checks a known (>= 0) extent; unknown (-1, dynamic) extents pass and are checked again in onShapeChange.
bool extentIs(int64_t actual, int64_t expected)
{
    return actual < 0 || actual == expected;
}

int64_t volume(Dims const& d)
{
    int64_t v = 1;
    for (int32_t i = 0; i < d.nbDims; ++i)
    {
        if (d.d[i] < 0)
            return -1;
        v *= d.d[i];
    }
    return v;
}

} // namespace
#endif // NV_TENSORRT_MAJOR >= 10

bool validateParams(GswaParams const& p, std::string* why)
{
    char buf[160];
    if (p.window != 8 && p.window != 16)
    {
        std::snprintf(buf, sizeof(buf), "window_size must be 8 or 16, got %d", p.window);
    }
    else if (p.shift < 0 || p.shift >= p.window)
    {
        std::snprintf(buf, sizeof(buf), "shift_size must be in [0, %d), got %d", p.window, p.shift);
    }
    else if (p.keyDim < 1 || p.keyDim > GSWA_MAX_KEY_DIM)
    {
        std::snprintf(buf, sizeof(buf), "key_dim must be in [1, %d], got %d", GSWA_MAX_KEY_DIM, p.keyDim);
    }
    else if (!(p.scale == p.scale))
    {
        std::snprintf(buf, sizeof(buf), "scale is NaN");
    }
    else
    {
        return true;
    }
    if (why != nullptr)
        *why = buf;
    return false;
}

#if NV_TENSORRT_MAJOR >= 10
// ------------------------------------------------------------------------------------------------ GswaPlugin

GswaPlugin::GswaPlugin(GswaParams const& params)
    : mParams(params)
{
    initFieldsToSerialize();
}

GswaPlugin::GswaPlugin(GswaPlugin const& other)
    : mParams(other.mParams)
{
    initFieldsToSerialize();
}

void GswaPlugin::initFieldsToSerialize()
{
    mDataToSerialize.clear();
    mDataToSerialize.emplace_back("window_size", &mParams.window, PluginFieldType::kINT32, 1);
    mDataToSerialize.emplace_back("shift_size", &mParams.shift, PluginFieldType::kINT32, 1);
    mDataToSerialize.emplace_back("key_dim", &mParams.keyDim, PluginFieldType::kINT32, 1);
    mDataToSerialize.emplace_back("scale", &mParams.scale, PluginFieldType::kFLOAT32, 1);
    mFCToSerialize.nbFields = static_cast<int32_t>(mDataToSerialize.size());
    mFCToSerialize.fields = mDataToSerialize.data();

    char buf[128];
    std::snprintf(buf, sizeof(buf), "window_size=%d shift_size=%d key_dim=%d scale=%.9g", mParams.window,
        mParams.shift, mParams.keyDim, static_cast<double>(mParams.scale));
    mMetadata = buf;
}

IPluginCapability* GswaPlugin::getCapabilityInterface(PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
    case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
    case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
    }
    return nullptr;
}

IPluginV3* GswaPlugin::clone() noexcept
{
    try
    {
        return new GswaPlugin(*this);
    }
    catch (std::exception const& e)
    {
        logError(std::string("clone failed: ") + e.what());
    }
    return nullptr;
}

char const* GswaPlugin::getPluginName() const noexcept
{
    return kGSWA_PLUGIN_NAME;
}

char const* GswaPlugin::getPluginVersion() const noexcept
{
    return kGSWA_PLUGIN_VERSION;
}

char const* GswaPlugin::getPluginNamespace() const noexcept
{
    return kGSWA_PLUGIN_NAMESPACE;
}

int32_t GswaPlugin::getNbOutputs() const noexcept
{
    return kNB_OUTPUTS;
}

int32_t GswaPlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    if (nbOutputs != kNB_OUTPUTS || nbInputs != kNB_INPUTS)
        return -1;
    outputTypes[0] = inputTypes[kQKV];
    return 0;
}

int32_t GswaPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
    int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& exprBuilder) noexcept
{
    if (nbInputs != kNB_INPUTS || nbOutputs != kNB_OUTPUTS || inputs[kQKV].nbDims != 4)
    {
        logError("expects 4 inputs with a 4-D qkv (B, 2*key_dim + Cv, H, W) and 1 output");
        return -1;
    }
    DimsExprs const& qkv = inputs[kQKV];
    outputs[0].nbDims = 4;
    outputs[0].d[0] = qkv.d[0];
    outputs[0].d[1] = exprBuilder.operation(
        DimensionOperation::kSUB, *qkv.d[1], *exprBuilder.constant(2 * static_cast<int64_t>(mParams.keyDim)));
    outputs[0].d[2] = qkv.d[2];
    outputs[0].d[3] = qkv.d[3];
    return 0;
}

bool GswaPlugin::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (nbInputs != kNB_INPUTS || nbOutputs != kNB_OUTPUTS || pos < 0 || pos >= kNB_INPUTS + kNB_OUTPUTS)
        return false;
    PluginTensorDesc const& desc = inOut[pos].desc;
    if (desc.format != TensorFormat::kLINEAR)
        return false;
    switch (pos)
    {
    case kQKV: return desc.type == DataType::kFLOAT || desc.type == DataType::kHALF;
    case kDW_WEIGHT:
    case kDW_BIAS:
    case kBIAS_TABLE: return desc.type == DataType::kFLOAT;
    case kOUTPUT: return desc.type == inOut[kQKV].desc.type;
    default: return false;
    }
}

int32_t GswaPlugin::configurePlugin(
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    if (nbInputs != kNB_INPUTS || nbOutputs != kNB_OUTPUTS)
    {
        logError("expects 4 inputs and 1 output");
        return -1;
    }
    int32_t const k = mParams.keyDim;
    int32_t const w = mParams.window;
    Dims const& qkv = in[kQKV].desc.dims;
    if (qkv.nbDims != 4)
    {
        logError("qkv must be 4-D (B, 2*key_dim + Cv, H, W)");
        return -1;
    }
    if (qkv.d[1] >= 0)
    {
        int64_t const cv = qkv.d[1] - 2 * static_cast<int64_t>(k);
        if (cv < 1 || cv > GSWA_MAX_V_DIM)
        {
            logError("qkv channels - 2*key_dim (the value dim) must be in [1, 64], got " + std::to_string(cv));
            return -1;
        }
    }
    if ((qkv.d[2] >= 0 && qkv.d[2] % w != 0) || (qkv.d[3] >= 0 && qkv.d[3] % w != 0))
    {
        logError("H and W must be multiples of window_size " + std::to_string(w));
        return -1;
    }
    Dims const& dw = in[kDW_WEIGHT].desc.dims;
    if (dw.nbDims != 4 || !extentIs(dw.d[0], k) || !extentIs(dw.d[1], 1) || !extentIs(dw.d[2], 5)
        || !extentIs(dw.d[3], 5))
    {
        logError("dw_weight must be (key_dim, 1, 5, 5) with key_dim = " + std::to_string(k));
        return -1;
    }
    Dims const& db = in[kDW_BIAS].desc.dims;
    if (db.nbDims != 1 || !extentIs(db.d[0], k))
    {
        logError("dw_bias must be (key_dim,) with key_dim = " + std::to_string(k));
        return -1;
    }
    int64_t const tableSize = volume(in[kBIAS_TABLE].desc.dims);
    int64_t const tw = 2 * static_cast<int64_t>(w) - 1;
    if (tableSize >= 0 && tableSize != tw * tw)
    {
        logError("bias_table must hold (2*window_size - 1)^2 = " + std::to_string(tw * tw) + " values");
        return -1;
    }
    (void) out;
    return 0;
}

size_t GswaPlugin::getWorkspaceSize(DynamicPluginTensorDesc const* /*inputs*/, int32_t /*nbInputs*/,
    DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept
{
    return 0;
}

char const* GswaPlugin::getMetadataString() noexcept
{
    return mMetadata.c_str();
}

int32_t GswaPlugin::onShapeChange(
    PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept
{
    if (nbInputs != kNB_INPUTS || nbOutputs != kNB_OUTPUTS || in[kQKV].dims.nbDims != 4)
        return -1;
    Dims const& d = in[kQKV].dims;
    int32_t const st = gswa_launch_config(in[kQKV].type == DataType::kHALF ? 1 : 0, static_cast<int>(d.d[0]),
        static_cast<int>(d.d[1]), static_cast<int>(d.d[2]), static_cast<int>(d.d[3]), mParams.keyDim,
        static_cast<int>(d.d[1] - 2 * static_cast<int64_t>(mParams.keyDim)), mParams.window, mParams.shift, nullptr);
    if (st != GSWA_OK)
    {
        logError(std::string("unsupported shape: ") + gswa_status_string(st));
        return -1;
    }
    return 0;
}

int32_t GswaPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
    void const* const* inputs, void* const* outputs, void* /*workspace*/, cudaStream_t stream) noexcept
{
    Dims const& d = inputDesc[kQKV].dims;
    int const B = static_cast<int>(d.d[0]);
    int const C = static_cast<int>(d.d[1]);
    int const H = static_cast<int>(d.d[2]);
    int const W = static_cast<int>(d.d[3]);
    int const cv = C - 2 * mParams.keyDim;
    auto const* dwW = static_cast<float const*>(inputs[kDW_WEIGHT]);
    auto const* dwB = static_cast<float const*>(inputs[kDW_BIAS]);
    auto const* table = static_cast<float const*>(inputs[kBIAS_TABLE]);
    int st = GSWA_OK;
    if (inputDesc[kQKV].type == DataType::kHALF)
    {
        st = gswa_forward_f16(inputs[kQKV], dwW, dwB, table, outputs[0], B, C, H, W, mParams.keyDim, cv,
            mParams.window, mParams.shift, mParams.scale, stream);
    }
    else
    {
        st = gswa_forward_f32(static_cast<float const*>(inputs[kQKV]), dwW, dwB, table,
            static_cast<float*>(outputs[0]), B, C, H, W, mParams.keyDim, cv, mParams.window, mParams.shift,
            mParams.scale, stream);
    }
    if (st != GSWA_OK)
    {
        logError(std::string("enqueue failed: ") + gswa_status_string(st));
        return -1;
    }
    return 0;
}

IPluginV3* GswaPlugin::attachToContext(IPluginResourceContext* /*context*/) noexcept
{
    return clone();
}

PluginFieldCollection const* GswaPlugin::getFieldsToSerialize() noexcept
{
    return &mFCToSerialize;
}

// ----------------------------------------------------------------------------------------- GswaPluginCreator

GswaPluginCreator::GswaPluginCreator()
{
    mFields.emplace_back("window_size", nullptr, PluginFieldType::kINT32, 1);
    mFields.emplace_back("shift_size", nullptr, PluginFieldType::kINT32, 1);
    mFields.emplace_back("key_dim", nullptr, PluginFieldType::kINT32, 1);
    mFields.emplace_back("scale", nullptr, PluginFieldType::kFLOAT32, 1);
    mFC.nbFields = static_cast<int32_t>(mFields.size());
    mFC.fields = mFields.data();
}

char const* GswaPluginCreator::getPluginName() const noexcept
{
    return kGSWA_PLUGIN_NAME;
}

char const* GswaPluginCreator::getPluginVersion() const noexcept
{
    return kGSWA_PLUGIN_VERSION;
}

char const* GswaPluginCreator::getPluginNamespace() const noexcept
{
    return kGSWA_PLUGIN_NAMESPACE;
}

PluginFieldCollection const* GswaPluginCreator::getFieldNames() noexcept
{
    return &mFC;
}

IPluginV3* GswaPluginCreator::createPlugin(
    char const* name, PluginFieldCollection const* fc, TensorRTPhase /*phase*/) noexcept
{
    try
    {
        GswaParams p;
        bool seen[4] = {false, false, false, false};
        for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i)
        {
            PluginField const& f = fc->fields[i];
            if (f.name == nullptr)
                continue;
            bool ok = true;
            if (std::strcmp(f.name, "window_size") == 0)
                ok = seen[0] = readInt(f, &p.window);
            else if (std::strcmp(f.name, "shift_size") == 0)
                ok = seen[1] = readInt(f, &p.shift);
            else if (std::strcmp(f.name, "key_dim") == 0)
                ok = seen[2] = readInt(f, &p.keyDim);
            else if (std::strcmp(f.name, "scale") == 0)
                ok = seen[3] = readFloat(f, &p.scale);
            if (!ok)
            {
                logError(std::string("field '") + f.name + "' has an unsupported type or no data");
                return nullptr;
            }
        }
        if (!(seen[0] && seen[1] && seen[2] && seen[3]))
        {
            logError(std::string("node '") + (name ? name : "")
                + "' needs all of window_size, shift_size, key_dim (int) and scale (float)");
            return nullptr;
        }
        std::string why;
        if (!validateParams(p, &why))
        {
            logError(std::string("node '") + (name ? name : "") + "': " + why);
            return nullptr;
        }
        return new GswaPlugin(p);
    }
    catch (std::exception const& e)
    {
        logError(std::string("createPlugin failed: ") + e.what());
    }
    return nullptr;
}

#endif // NV_TENSORRT_MAJOR >= 10
} // namespace agileir

// ----------------------------------------------------------------------------------------------- entry points
#if NV_TENSORRT_MAJOR >= 10

extern "C" AGILEIR_EXPORT void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
{
    agileir::gLoggerFinder.store(finder);
}

#ifdef AGILEIR_GSWA_STATIC_REGISTRATION
namespace
{
struct StaticRegistration
{
    StaticRegistration()
    {
        static agileir::GswaPluginCreator creator;
        if (!getPluginRegistry()->registerCreator(creator, agileir::kGSWA_PLUGIN_NAMESPACE))
        {
            std::fprintf(stderr, "[agileir] could not register %s::%s (already registered?)\n",
                agileir::kGSWA_PLUGIN_NAMESPACE, agileir::kGSWA_PLUGIN_NAME);
        }
    }
};
StaticRegistration const gStaticRegistration;
} // namespace
#else
#if defined(AGILEIR_TRT_RTX) && !defined(_WIN32)
namespace
{
// TensorRT-RTX (checked with 1.7.1) adds the plugin layers of an ONNX graph through a private API that its ONNX
// parser dlopen-s by the hard-coded bare name "libtensorrt_rtx.so" (then dlsym "getPrivateApi_INTERNAL"). The
// pip wheel (tensorrt_rtx_libs/) ships only libtensorrt_rtx.so.1, so that dlopen fails, the parser's
// std::runtime_error reaches a noexcept frame, and the process aborts ("terminate called without an active
// exception") right after "Successfully created plugin". dlopen-ing that name from here searches this library's
// RUNPATH ($ORIGIN: the CMake build puts a libtensorrt_rtx.so link next to the library), then LD_LIBRARY_PATH and
// the system paths; when it resolves to the already-loaded libtensorrt_rtx.so.1 (same file), the loader records
// the bare name on that object and the parser's own dlopen then succeeds.
void aliasRtxLibraryImpl()
{
    using agileir::logMsg;
    constexpr char const* kBare = "libtensorrt_rtx.so";
    constexpr char const* kVersioned = "libtensorrt_rtx.so.1";
    if (void* h = dlopen(kBare, RTLD_LAZY | RTLD_NOLOAD))
    {
        dlclose(h);
        return; // already resolvable (TensorRT-RTX SDK on the search path, or done before)
    }
    void* loaded = dlopen(kVersioned, RTLD_LAZY | RTLD_NOLOAD);
    std::string loadedPath = kVersioned;
    struct link_map* lm = nullptr;
    if (loaded != nullptr && dlinfo(loaded, RTLD_DI_LINKMAP, &lm) == 0 && lm != nullptr && lm->l_name != nullptr)
        loadedPath = lm->l_name;
    void* h = dlopen(kBare, RTLD_LAZY);
    if (h != nullptr && loaded != nullptr && h != loaded)
    {
        dlclose(h);
        h = nullptr;
        logMsg(ILogger::Severity::kERROR,
            std::string(kBare) + " resolves to a different copy of TensorRT-RTX than the loaded " + loadedPath
                + "; not using it");
    }
    if (h != nullptr)
    {
        logMsg(ILogger::Severity::kVERBOSE, std::string(kBare) + " resolved for the TensorRT-RTX ONNX parser");
        if (loaded != nullptr)
            dlclose(loaded); // drop the NOLOAD reference; h keeps the name registered
        return;
    }
    std::string here = "<folder of libagileir_trt_plugins_rtx.so>";
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(&aliasRtxLibraryImpl), &info) != 0 && info.dli_fname != nullptr)
    {
        here = info.dli_fname;
        here = here.substr(0, here.find_last_of('/') + 1);
    }
    logMsg(ILogger::Severity::kERROR,
        std::string(kBare) + " cannot be opened: the TensorRT-RTX ONNX parser will abort when it imports a "
            + "GroupShiftedWindowAttention node. Fix: ln -s " + loadedPath + " " + here + kBare
            + " (or start the process with a folder holding that link on LD_LIBRARY_PATH)");
    if (loaded != nullptr)
        dlclose(loaded);
}

void aliasRtxLibrary() noexcept
{
    try
    {
        aliasRtxLibraryImpl();
    }
    catch (...)
    {
    }
}
} // namespace
#endif

extern "C" AGILEIR_EXPORT nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
#if defined(AGILEIR_TRT_RTX) && !defined(_WIN32)
    static std::once_flag aliasOnce;
    std::call_once(aliasOnce, aliasRtxLibrary);
#endif
    static agileir::GswaPluginCreator creator;
    static nvinfer1::IPluginCreatorInterface* const kCreators[] = {&creator};
    nbCreators = 1;
    return kCreators;
}
#endif
#endif // NV_TENSORRT_MAJOR >= 10
