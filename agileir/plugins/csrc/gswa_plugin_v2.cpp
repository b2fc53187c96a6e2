/*
 * TensorRT 8.x (JetPack 5.1: 8.5.2, JetPack 6.0: 8.6.2) wrapper of the fused GSWA kernel (gswa_kernel.cu):
 * IPluginV2DynamicExt + IPluginCreator, the plugin interfaces those releases have (IPluginV3 is TensorRT 10).
 *
 * Same node as the IPluginV3 plugin (gswa_plugin.cpp; docs/gswa.md, "Plugin node"): name
 * "GroupShiftedWindowAttention", namespace "agileir", version "1", inputs qkv (FP32|FP16), dw_weight, dw_bias,
 * bias_table (FP32), one output of qkv's type, fields window_size, shift_size, key_dim (int32) and scale (float32).
 * TensorRT 8.x's ONNX parser finds the creator through plugin_namespace / plugin_version (its FallbackPluginImporter)
 * and passes the node attributes as those fields.
 *
 * Compiled for TensorRT < 10 only (NV_TENSORRT_MAJOR; gswa_plugin.cpp is the TensorRT >= 10 half), so the library
 * built against a release's headers implements the interface that release has. Two builds, as for TensorRT 10:
 *   libagileir_trt_plugins.so         exports getPluginCreators (and, 8.6, setLoggerFinder) with C linkage for
 *                                     TensorRT 8.6's IPluginRegistry::loadLibrary (trtexec --dynamicPlugins,
 *                                     version-compatible engines). TensorRT 8.5 has no loadLibrary: there, use the
 *                                     static build (or register getPluginCreators' creator yourself).
 *   libagileir_trt_plugins_static.so  -DAGILEIR_GSWA_STATIC_REGISTRATION: registers the creator under the "agileir"
 *                                     namespace when dlopen-ed (trtexec --plugins, ctypes.CDLL); links libnvinfer.
 */
#include "NvInferRuntime.h"

#if NV_TENSORRT_MAJOR < 10

#include "gswa_kernel.h"
#include "gswa_plugin.h"

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#if defined(_WIN32)
#define AGILEIR_V2_EXPORT __declspec(dllexport)
#else
#define AGILEIR_V2_EXPORT __attribute__((visibility("default")))
#endif

// TensorRT 8.x marks IPluginV2 deprecated, yet its IPluginCreator::createPlugin / deserializePlugin return it.
#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif

using namespace nvinfer1;

namespace agileir
{
namespace
{

#if NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 6
ILoggerFinder* gLoggerFinderV2{nullptr}; // set by TensorRT 8.6's loadLibrary through setLoggerFinder
#endif

void logErrorV2(std::string const& msg) noexcept
{
    try
    {
        std::string const text = std::string("[agileir::GroupShiftedWindowAttention] ") + msg;
#if NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 6
        ILogger* logger = gLoggerFinderV2 != nullptr ? gLoggerFinderV2->findLogger() : nullptr;
        if (logger != nullptr)
        {
            logger->log(ILogger::Severity::kERROR, text.c_str());
            return;
        }
#endif
        std::fprintf(stderr, "%s\n", text.c_str());
    }
    catch (...)
    {
    }
}

constexpr int32_t kQKV = 0, kDW_WEIGHT = 1, kDW_BIAS = 2, kBIAS_TABLE = 3, kNB_INPUTS = 4, kOUTPUT = 4;
constexpr size_t kSERIALIZED_BYTES = 3 * sizeof(int32_t) + sizeof(float);

bool fieldInt(PluginField const& f, int32_t* out)
{
    if (f.data == nullptr || f.length < 1)
        return false;
    switch (f.type)
    {
    case PluginFieldType::kINT32: *out = *static_cast<int32_t const*>(f.data); return true;
    case PluginFieldType::kINT16: *out = *static_cast<int16_t const*>(f.data); return true;
    case PluginFieldType::kINT8: *out = *static_cast<int8_t const*>(f.data); return true;
    default: return false;
    }
}

bool fieldFloat(PluginField const& f, float* out)
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

bool known(int32_t extent, int32_t expected)
{
    return extent < 0 || extent == expected;
}

} // namespace

class GswaPluginV2 final : public IPluginV2DynamicExt
{
public:
    explicit GswaPluginV2(GswaParams const& params)
        : mParams(params)
    {
    }

    // IPluginV2
    AsciiChar const* getPluginType() const noexcept override { return kGSWA_PLUGIN_NAME; }
    AsciiChar const* getPluginVersion() const noexcept override { return kGSWA_PLUGIN_VERSION; }
    int32_t getNbOutputs() const noexcept override { return 1; }
    int32_t initialize() noexcept override { return 0; }
    void terminate() noexcept override {}
    size_t getSerializationSize() const noexcept override { return kSERIALIZED_BYTES; }
    void serialize(void* buffer) const noexcept override
    {
        auto* p = static_cast<char*>(buffer);
        int32_t const ints[3] = {mParams.window, mParams.shift, mParams.keyDim};
        std::memcpy(p, ints, sizeof(ints));
        std::memcpy(p + sizeof(ints), &mParams.scale, sizeof(float));
    }
    void destroy() noexcept override { delete this; }
    void setPluginNamespace(AsciiChar const* ns) noexcept override { mNamespace = ns != nullptr ? ns : ""; }
    AsciiChar const* getPluginNamespace() const noexcept override { return mNamespace.c_str(); }

    // IPluginV2Ext
    DataType getOutputDataType(int32_t /*index*/, DataType const* inputTypes, int32_t /*nbInputs*/) const
        noexcept override
    {
        return inputTypes[kQKV];
    }

    // IPluginV2DynamicExt
    IPluginV2DynamicExt* clone() const noexcept override
    {
        try
        {
            auto* copy = new GswaPluginV2(mParams);
            copy->setPluginNamespace(mNamespace.c_str());
            return copy;
        }
        catch (std::exception const& e)
        {
            logErrorV2(std::string("clone failed: ") + e.what());
        }
        return nullptr;
    }

    DimsExprs getOutputDimensions(int32_t outputIndex, DimsExprs const* inputs, int32_t nbInputs,
        IExprBuilder& exprBuilder) noexcept override
    {
        DimsExprs out{};
        if (outputIndex != 0 || nbInputs != kNB_INPUTS || inputs[kQKV].nbDims != 4)
        {
            logErrorV2("expects 4 inputs with a 4-D qkv (B, 2*key_dim + Cv, H, W) and 1 output");
            return out;
        }
        out = inputs[kQKV];
        out.d[1] = exprBuilder.operation(
            DimensionOperation::kSUB, *inputs[kQKV].d[1], *exprBuilder.constant(2 * mParams.keyDim));
        return out;
    }

    bool supportsFormatCombination(
        int32_t pos, PluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept override
    {
        if (nbInputs != kNB_INPUTS || nbOutputs != 1 || pos < 0 || pos > kOUTPUT)
            return false;
        PluginTensorDesc const& desc = inOut[pos];
        if (desc.format != TensorFormat::kLINEAR)
            return false;
        if (pos == kQKV)
            return desc.type == DataType::kFLOAT || desc.type == DataType::kHALF;
        if (pos == kOUTPUT)
            return desc.type == inOut[kQKV].type;
        return desc.type == DataType::kFLOAT; // dw_weight, dw_bias, bias_table
    }

    void configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* /*out*/,
        int32_t nbOutputs) noexcept override
    {
        // TensorRT 8.x's configurePlugin cannot fail: a bad shape is reported here and refused in enqueue.
        if (nbInputs != kNB_INPUTS || nbOutputs != 1 || in[kQKV].desc.dims.nbDims != 4)
        {
            logErrorV2("expects 4 inputs with a 4-D qkv and 1 output");
            return;
        }
        Dims const& qkv = in[kQKV].desc.dims;
        int32_t const w = mParams.window;
        if ((qkv.d[2] >= 0 && qkv.d[2] % w != 0) || (qkv.d[3] >= 0 && qkv.d[3] % w != 0))
            logErrorV2("H and W must be multiples of window_size " + std::to_string(w));
        Dims const& dw = in[kDW_WEIGHT].desc.dims;
        if (dw.nbDims != 4 || !known(dw.d[0], mParams.keyDim) || !known(dw.d[2], 5) || !known(dw.d[3], 5))
            logErrorV2("dw_weight must be (key_dim, 1, 5, 5) with key_dim = " + std::to_string(mParams.keyDim));
    }

    size_t getWorkspaceSize(PluginTensorDesc const* /*inputs*/, int32_t /*nbInputs*/,
        PluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept override
    {
        return 0;
    }

    int32_t enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
        void const* const* inputs, void* const* outputs, void* /*workspace*/, cudaStream_t stream) noexcept override
    {
        Dims const& d = inputDesc[kQKV].dims;
        int const B = d.d[0], C = d.d[1], H = d.d[2], W = d.d[3];
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
            logErrorV2(std::string("enqueue failed: ") + gswa_status_string(st));
            return -1;
        }
        return 0;
    }

private:
    GswaParams mParams;
    std::string mNamespace{kGSWA_PLUGIN_NAMESPACE};
};

class GswaPluginV2Creator final : public IPluginCreator
{
public:
    GswaPluginV2Creator()
    {
        mFields.emplace_back(PluginField{"window_size", nullptr, PluginFieldType::kINT32, 1});
        mFields.emplace_back(PluginField{"shift_size", nullptr, PluginFieldType::kINT32, 1});
        mFields.emplace_back(PluginField{"key_dim", nullptr, PluginFieldType::kINT32, 1});
        mFields.emplace_back(PluginField{"scale", nullptr, PluginFieldType::kFLOAT32, 1});
        mFC.nbFields = static_cast<int32_t>(mFields.size());
        mFC.fields = mFields.data();
    }

    AsciiChar const* getPluginName() const noexcept override { return kGSWA_PLUGIN_NAME; }
    AsciiChar const* getPluginVersion() const noexcept override { return kGSWA_PLUGIN_VERSION; }
    PluginFieldCollection const* getFieldNames() noexcept override { return &mFC; }
    void setPluginNamespace(AsciiChar const* ns) noexcept override { mNamespace = ns != nullptr ? ns : ""; }
    AsciiChar const* getPluginNamespace() const noexcept override { return mNamespace.c_str(); }

    IPluginV2* createPlugin(AsciiChar const* name, PluginFieldCollection const* fc) noexcept override
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
                    ok = seen[0] = fieldInt(f, &p.window);
                else if (std::strcmp(f.name, "shift_size") == 0)
                    ok = seen[1] = fieldInt(f, &p.shift);
                else if (std::strcmp(f.name, "key_dim") == 0)
                    ok = seen[2] = fieldInt(f, &p.keyDim);
                else if (std::strcmp(f.name, "scale") == 0)
                    ok = seen[3] = fieldFloat(f, &p.scale);
                if (!ok)
                {
                    logErrorV2(std::string("field '") + f.name + "' has an unsupported type or no data");
                    return nullptr;
                }
            }
            if (!(seen[0] && seen[1] && seen[2] && seen[3]))
            {
                logErrorV2(std::string("node '") + (name ? name : "")
                    + "' needs all of window_size, shift_size, key_dim (int) and scale (float)");
                return nullptr;
            }
            return make(p, name);
        }
        catch (std::exception const& e)
        {
            logErrorV2(std::string("createPlugin failed: ") + e.what());
        }
        return nullptr;
    }

    IPluginV2* deserializePlugin(AsciiChar const* name, void const* data, size_t length) noexcept override
    {
        try
        {
            if (data == nullptr || length != kSERIALIZED_BYTES)
            {
                logErrorV2("serialized plugin of " + std::to_string(length) + " bytes, expected "
                    + std::to_string(kSERIALIZED_BYTES));
                return nullptr;
            }
            int32_t ints[3];
            GswaParams p;
            std::memcpy(ints, data, sizeof(ints));
            std::memcpy(&p.scale, static_cast<char const*>(data) + sizeof(ints), sizeof(float));
            p.window = ints[0];
            p.shift = ints[1];
            p.keyDim = ints[2];
            return make(p, name);
        }
        catch (std::exception const& e)
        {
            logErrorV2(std::string("deserializePlugin failed: ") + e.what());
        }
        return nullptr;
    }

private:
    IPluginV2* make(GswaParams const& p, AsciiChar const* name)
    {
        std::string why;
        if (!validateParams(p, &why))
        {
            logErrorV2(std::string("node '") + (name ? name : "") + "': " + why);
            return nullptr;
        }
        auto* plugin = new GswaPluginV2(p);
        plugin->setPluginNamespace(mNamespace.c_str());
        return plugin;
    }

    std::vector<PluginField> mFields;
    PluginFieldCollection mFC{};
    std::string mNamespace{kGSWA_PLUGIN_NAMESPACE};
};

} // namespace agileir

#ifdef AGILEIR_GSWA_STATIC_REGISTRATION
namespace
{
struct StaticRegistrationV2
{
    StaticRegistrationV2()
    {
        static agileir::GswaPluginV2Creator creator;
        if (!getPluginRegistry()->registerCreator(creator, agileir::kGSWA_PLUGIN_NAMESPACE))
        {
            std::fprintf(stderr, "[agileir] could not register %s::%s (already registered?)\n",
                agileir::kGSWA_PLUGIN_NAMESPACE, agileir::kGSWA_PLUGIN_NAME);
        }
    }
};
StaticRegistrationV2 const gStaticRegistrationV2;
} // namespace
#else
#if NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 6
extern "C" AGILEIR_V2_EXPORT void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
{
    agileir::gLoggerFinderV2 = finder;
}
#endif

extern "C" AGILEIR_V2_EXPORT nvinfer1::IPluginCreator* const* getPluginCreators(int32_t& nbCreators)
{
    static agileir::GswaPluginV2Creator creator;
    static nvinfer1::IPluginCreator* const kCreators[] = {&creator};
    nbCreators = 1;
    return kCreators;
}
#endif

#endif // NV_TENSORRT_MAJOR < 10
